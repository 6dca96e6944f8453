"""Every Docker label key the emulator writes; labels are the lasting truth about
what a container is, so the service can rebuild its picture from Docker alone."""

from __future__ import annotations

# Our own keys, on the instance's containers and networks.
INSTANCE = "io.skaha-emulator.instance"
ROLE = "io.skaha-emulator.role"  # service | gateway | session
CONFIG_HASH = "io.skaha-emulator.config-hash"  # platform containers: recreated by `up` when it changes
ROW_ID = "io.skaha-emulator.row"  # the service's record of this container (a desktop-app's differs from its id)
NETWORK_USER = "io.skaha-emulator.user"  # on a user network: whose it is

# Our own keys on the images `emulate images build` makes.
RECIPE = "io.skaha-emulator.recipe"  # the recipe (images/<name>) an image was built from
VERSION = "io.skaha-emulator.version"  # the emulator's version that built it
CA_DIGEST = "io.skaha-emulator.ca"  # on the base: a digest of the CAs baked in (a change rebuilds it)
CONTEXT_DIGEST = "io.skaha-emulator.context"  # a developer's image: a digest of the folder it was built from
BUILD_LABELS = (RECIPE, VERSION, CA_DIGEST, CONTEXT_DIGEST)  # what says how an image was built (a snapshot was not)

# Our own keys on the images saved from sessions (`emulate snapshot`, core/snapshots.py): whose it is, in which
# instance (the same user name in another instance is another person), and what it was saved from.
SNAPSHOT_OWNER = "io.skaha-emulator.snapshot.owner"
SNAPSHOT_INSTANCE = "io.skaha-emulator.snapshot.instance"
SNAPSHOT_SESSION = "io.skaha-emulator.snapshot.session"  # the session's id
SNAPSHOT_IMAGE = "io.skaha-emulator.snapshot.image"  # the image the session ran

# Our own keys on what the test kit's standalone mode leaves in Docker (testkit/leftovers.py).
KIT_OWNER = "io.skaha-emulator.testkit.owner"  # "<host>:<uid>:<pid>:<the process's start time>"
KIT_STATE = "io.skaha-emulator.testkit.state"  # the run's state folder, which holds KEPT when it kept a session
# What outlives the runs, for reuse=True (testkit/reuse.py): never swept by KIT_OWNER, removed by `testkit clean`.
KIT_REUSE = "io.skaha-emulator.testkit.reuse"  # on the reuse home's network, gateway and sessions: its state folder
KIT_REUSE_SLOT = "io.skaha-emulator.testkit.reuse-slot"  # what a test asked for (type, name, image as named)
KIT_REUSE_KEY = "io.skaha-emulator.testkit.reuse-key"  # what it was made of (image id, options, profile, /arc)

# The keys skaha itself sets on session pods (skaha >= 1.x, canfar.net/*).
SESSION_ID = "canfar.net/id"
APP_ID = "canfar.net/app-id"
USERNAME = "canfar.net/username"
SESSION_NAME = "canfar.net/name"
KIND = "canfar.net/kind"
FLAVOR = "canfar.net/flavor"  # fixed | flexible
ACCELERATOR = "canfar.net/accelerator"  # gpu | none
MANAGED_BY = "app.kubernetes.io/managed-by"

# The OCI image label that carries an image's session types (AstroAI's CANFAR images use it).
IMAGE_SESSION_TYPES = "io.canfar.skaha.session.type"
IMAGE_DESCRIPTION = "org.opencontainers.image.description"

ROLE_SERVICE = "service"
ROLE_GATEWAY = "gateway"
ROLE_SESSION = "session"
ROLE_HELPER = "helper"  # short-lived containers that read files out of an image
ROLE_NETWORK = "network"  # the platform's own network (service and gateway)
ROLE_USER_NETWORK = "user-network"  # one per user: that user's sessions and the gateway


def row_of(container_labels: dict[str, str]) -> str:
    """The record a session container belongs to (containers made before ROW_ID carry only the id)."""
    return container_labels.get(ROW_ID) or container_labels.get(SESSION_ID, "")


def image_session_types(image_labels: dict[str, str]) -> list[str] | None:
    """The session types an image declares (comma or space separated), or None when it declares none."""
    declared = image_labels.get(IMAGE_SESSION_TYPES)
    if declared is None or not declared.strip():
        return None
    return declared.replace(",", " ").split()


def platform_labels(instance: str, role: str) -> dict[str, str]:
    return {INSTANCE: instance, ROLE: role, MANAGED_BY: "skaha-emulator"}


def selector(instance: str, role: str | None = None) -> list[str]:
    """A Docker `label` filter selecting what an instance owns (optionally one role)."""
    wanted = [f"{INSTANCE}={instance}"]
    if role:
        wanted.append(f"{ROLE}={role}")
    return wanted
