"""Relaunch: an ended interactive session launched again with its old settings (Open OnDemand's relaunch).

What is carried over: the type, the image, the name, and the resources: the cores, RAM and GPUs it was given
when it had fixed ones (a type whose profile fixes them gets its profile's again; GPUs are asked for again by
count), else flexible ones, as the launch form's two choices. What is not: its environment (`env` entries
may hold a secret, and an interactive session gets none from the form anyway), a command and its arguments
(headless jobs only, which are not relaunched), registry credentials (never kept: a private image asks for
them again), a fault it asked for, and host folders mounted into it (`emulate dev --mount`). The new session
is a new launch in every other way: a new id, a new expiry, the same checks and limits as any launch.
"""

from __future__ import annotations

from emulator.core.models import LaunchRequest, Session, Status
from emulator.errors import InvalidRequest
from emulator.profiles import Profile


def check_relaunchable(session: Session, profile: Profile | None) -> None:
    """An ended (Succeeded or Failed) interactive session, or InvalidRequest saying why not."""
    if profile is None:
        raise InvalidRequest(f"session {session.id} is of type {session.type}, which this platform no longer offers")
    if not profile.interactive:
        raise InvalidRequest(
            f"session {session.id} is a {session.type} session: only interactive sessions are relaunched (launch a "
            "job again with its command)"
        )
    if not session.status.final:
        raise InvalidRequest(
            f"session {session.id} is {session.status.value}: only a session that has ended is relaunched"
        )


def _number(value: float) -> str:
    return f"{value:g}"  # as a launch names it: 2, 0.5


def launch_request(session: Session, profile: Profile, registry_auth: str | None = None) -> LaunchRequest:
    """The launch that gives `session`'s type, image, name and resources again (nothing else: the module's
    docstring says what stays behind)."""
    r = session.resources
    chosen = r.fixed and profile.fixed_resources is None  # a type with fixed resources takes no cores or RAM
    return LaunchRequest(
        name=session.name,
        image=session.image,
        type=session.type.value,
        cores=_number(r.cores_request) if chosen else None,
        ram=_number(r.ram_request_gb) if chosen else None,
        gpus=str(r.gpus) if r.gpus else None,
        registry_auth=registry_auth,
    )


def limit_reached(session: Session, refusal: str) -> str:
    """skaha's refusal of one session too many, and what to do about it: a Failed session counts towards the
    limit (as in skaha v0) until it is deleted, the one relaunched too."""
    if session.status is not Status.FAILED:
        return refusal
    return f"{refusal} A Failed session counts until it is deleted: delete {session.name} ({session.id}) first."


def credentials_again(session: Session) -> str:
    """Why a relaunch of a session whose image came with registry credentials needs them once more."""
    return (
        f"{session.name}'s image {session.image} came from a private registry, and its credentials are never kept: "
        "use Edit and relaunch and give the registry username and secret under Advanced"
    )
