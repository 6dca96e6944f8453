"""Desktop-apps: X11 applications attached to a desktop session (skaha's /session/{id}/app API).

An app is a session row of type desktop-app whose parent is the desktop; it gets the desktop's
expiry, is renewed and terminated with it, and never counts towards the session limit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from emulator import naming
from emulator.core import policy
from emulator.core.models import Session, Status, User
from emulator.errors import InvalidRequest, NotFound
from emulator.runtime.spec import app_name

if TYPE_CHECKING:
    from emulator.core.sessions import SessionManager

NO_NAME = "<none>"  # desktop-apps have no session name in skaha


class DesktopApps:
    def __init__(self, manager: SessionManager) -> None:
        self.m = manager

    async def launch(
        self, user: User, desktop_id: str, image_ref: str | None, cores: str | None, ram: str | None
    ) -> str:
        """Attach a desktop-app to the caller's desktop; answers the 3-character app id."""
        desktop = self.m.store.get(desktop_id)
        if desktop is None or desktop.user != user.name or desktop.type != "desktop" or not desktop.status.live:
            raise NotFound(f"session {desktop_id} not found")
        if not image_ref:
            raise InvalidRequest("Missing parameter 'image'")
        await self.m.local_image(image_ref)
        profile = self.m.profiles.get("desktop-app")
        if profile is None:
            raise InvalidRequest("desktop-app sessions are not available (no profiles/desktop-app.yaml)")
        resources = policy.resolve_resources(
            policy.ResourceRequest(cores, ram), self.m.context, profile.fixed_resources, False, headless=False
        )
        now = self.m.clock()
        app_id = naming.new_app_id()
        session = Session(
            id=naming.app_row_id(desktop_id, app_id),
            user=user.name,
            type="desktop-app",
            name=NO_NAME,
            image=image_ref,
            status=Status.PENDING,
            resources=resources,
            start_time=now,
            expiry_time=desktop.expiry_time,
            parent_id=desktop_id,
            app_id=app_id,
        )
        while not self.m.store.admit(session, self.m.settings.max_sessions):
            session.app_id = naming.new_app_id()
            session.id = naming.app_row_id(desktop_id, session.app_id)
        desktop = self.m.store.get(desktop_id)
        if desktop is None or not desktop.status.live:  # deleted meanwhile
            self.m.store.remove(session.id)
            raise NotFound(f"session {desktop_id} not found")
        self.m.event(session.id, "Scheduled", f"Attached {app_name(image_ref)} to desktop {desktop_id}")
        self.m.start(session.id)
        return session.app_id or ""

    def list(self, user: User, status_filter: str | None, status_word: Callable[[Status], str]) -> list[Session]:
        """All of the caller's desktop-apps (skaha lists them whatever desktop is named)."""
        return self.m.sessions(user, "desktop-app", status_filter, status_word)

    def get(self, user: User, desktop_id: str, app_id: str) -> Session:
        session = self.m.store.get(naming.app_row_id(desktop_id, app_id))
        if session is None or session.user != user.name:
            raise NotFound(f"desktop app with session {desktop_id} and app ID {app_id} was not found")
        return session

    async def delete(self, user: User, desktop_id: str, app_id: str) -> None:
        await self.m.terminate(self.get(user, desktop_id, app_id))
