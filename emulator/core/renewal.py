"""skaha's renew, the one rule that both the owner's renew (sessions.py) and an admin's (admin.py) apply: the
deadline becomes now + the session lifetime when that is later, a desktop's apps move with it, and its events
say who moved it."""

from __future__ import annotations

from datetime import datetime

from emulator.core import policy
from emulator.core.models import Session, User
from emulator.core.record import SessionRecord
from emulator.core.store import Store


def extend(store: Store, record: SessionRecord, target: Session, lifetime_seconds: int, by: User) -> datetime:
    """Move the expiry of `target` (a session, never a desktop-app: an app renews with its desktop) and of its
    apps, recording who did it (`by`: its owner, or an admin); the new expiry. The caller checked that `target`
    is live and that `by` may renew it."""
    new_expiry = max(target.expiry_time, policy.expiry(record.now(), lifetime_seconds))
    for session in [target, *store.apps_of(target.id)]:  # skaha renews the desktop's apps too
        store.set_expiry(session.id, new_expiry)
    who = by.name if by.name == target.user else f"admin {by.name}"
    record.event(target.id, "Renewed", f"Expiry moved to {new_expiry.isoformat()} by {who}")
    return new_expiry
