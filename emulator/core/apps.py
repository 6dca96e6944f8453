"""Desktop-apps: X11 applications attached to a desktop session (skaha's /session/{id}/app API).

An app is a session row of type desktop-app whose parent is the desktop; it gets the desktop's
expiry, is renewed and terminated with it, and never counts towards the session limit. This
module is pure: the manager (sessions.py) does the admitting, starting and removing.
"""

from __future__ import annotations

from datetime import datetime

from emulator import naming
from emulator.core.contract import app_name
from emulator.core.models import Resources, Session, Status, User
from emulator.core.policy import MAX_NAME_LENGTH
from emulator.errors import InvalidRequest
from emulator.profiles import Profile

NO_NAME = "<none>"  # desktop-apps have no session name in skaha


def new_app(profile: Profile, desktop: Session, user: User, image: str, resources: Resources, now: datetime) -> Session:
    """A Pending desktop-app row for `desktop`, with a fresh 3-character app id."""
    app_id = naming.new_app_id()
    return Session(
        id=naming.app_row_id(desktop.id, app_id),
        user=user.name,
        type=profile.type,
        name=NO_NAME,
        image=image,
        status=Status.PENDING,
        resources=resources,
        start_time=now,
        expiry_time=desktop.expiry_time,
        parent_id=desktop.id,
        app_id=app_id,
    )


def check_image_name(image: str) -> None:
    """An app's container and host are named after its image (skaha's app_name): at most 63 characters."""
    if len(app_name(image)) > MAX_NAME_LENGTH:
        raise InvalidRequest(
            f"image name '{app_name(image)[:40]}…' is too long: a desktop-app's host name is the image's "
            f"last path segment, at most {MAX_NAME_LENGTH} characters"
        )


def redraw_id(app: Session) -> None:
    """Give an app whose id was taken another one."""
    assert app.parent_id is not None
    app.app_id = naming.new_app_id()
    app.id = naming.app_row_id(app.parent_id, app.app_id)


def scheduled_message(app: Session) -> str:
    return f"Attached {app_name(app.image)} to desktop {app.parent_id}"
