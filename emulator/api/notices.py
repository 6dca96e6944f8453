"""The message to the room over the API (the emulator's own; skaha has none):

- `GET /skaha/v1/broadcast`, for anyone with a token: the message as JSON (`text`, `setBy`, `setAt`), or 204 No
  Content when there is none;
- `PUT` (or `POST`) `/skaha/v1/admin/broadcast` with `text` (query or form, as skaha's parameters), admins only:
  shows it on every dashboard from now on, answers it as GET does; 400 in words when it is empty, longer than
  500 characters or not one line of printable text;
- `DELETE /skaha/v1/admin/broadcast`, admins only: takes it down; `{"cleared": true}`, or false when there was
  none.

`announce` and `withdraw` are the one way either face (this API, the portal's form) changes it: with the line
in the audit log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from emulator.api import views
from emulator.api.audit import audit
from emulator.api.deps import AdminUser, CurrentUser, Manager, Query
from emulator.core.models import User
from emulator.core.notices import Notice
from emulator.core.sessions import SessionManager

router = APIRouter(prefix="/skaha/v1")


def notice_json(notice: Notice) -> dict[str, Any]:
    return {"text": notice.text, "setBy": notice.set_by, "setAt": views.iso(notice.set_at)}


def announce(request: Request, manager: SessionManager, admin: User, text: str | None) -> Notice:
    """Show `text` on every dashboard (checked first: notices.checked_text), said in the audit log."""
    notice = manager.broadcast.set(text, admin.name)
    audit(request, "broadcast", admin.name, text=notice.text)
    return notice


def withdraw(request: Request, manager: SessionManager, admin: User) -> bool:
    """Take the message down; whether there was one (the audit log says either way)."""
    cleared = manager.broadcast.clear()
    audit(request, "broadcast-clear", admin.name, cleared=cleared)
    return cleared


def _json(document: object) -> Response:
    return Response(views.render(document), media_type="application/json")


@router.get("/broadcast")
async def current(user: CurrentUser, manager: Manager) -> Response:
    notice = manager.broadcast.current()
    return Response(status_code=204) if notice is None else _json(notice_json(notice))


# The caller is checked before the parameters: no body is read for anyone but an admin.
async def set_message(request: Request, admin: AdminUser, p: Query, manager: Manager) -> Response:
    return _json(notice_json(announce(request, manager, admin, p.get("text"))))


router.add_api_route("/admin/broadcast", set_message, methods=["PUT"])
# POST does the same, for clients that only post forms; the OpenAPI document names PUT alone.
router.add_api_route("/admin/broadcast", set_message, methods=["POST"], include_in_schema=False)


@router.delete("/admin/broadcast")
async def clear_message(request: Request, admin: AdminUser, manager: Manager) -> Response:
    return _json({"cleared": withdraw(request, manager, admin)})
