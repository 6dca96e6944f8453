"""The message to the room: one line an admin sets ("We restart at 14:00") that every dashboard shows until
an admin clears it. One at a time, kept in the store (so it outlives a service restart), said by whom and
when."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from emulator.core.store import Store
from emulator.errors import InvalidRequest

BROADCAST = "broadcast"  # the store's key for it (table notices)
MAX_CHARACTERS = 500  # a banner, not a letter: it has to fit above a phone's dashboard


@dataclass(frozen=True)
class Notice:
    text: str
    set_by: str
    set_at: datetime


def checked_text(text: str | None) -> str:
    """The message as it will be shown (spaces around it dropped), or InvalidRequest saying what is wrong.

    One line of printable characters: no line breaks, tabs, control or invisible formatting characters (a
    right-to-left override would make the banner say something other than what was typed)."""
    words = (text or "").strip()
    if not words:
        raise InvalidRequest(
            f"the message is empty: give its text (up to {MAX_CHARACTERS} characters), or clear the message instead"
        )
    if len(words) > MAX_CHARACTERS:
        raise InvalidRequest(f"the message has {len(words)} characters; at most {MAX_CHARACTERS}")
    odd = next((c for c in words if not c.isprintable()), None)
    if odd is not None:
        raise InvalidRequest(
            f"the message holds a character that cannot be shown (U+{ord(odd):04X}: a line break, tab or control "
            "character); give one line of text"
        )
    return words


class Broadcast:
    """The admins' message to every dashboard, in the store under BROADCAST."""

    def __init__(self, store: Store, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock

    def current(self) -> Notice | None:
        found = self._store.notice(BROADCAST)
        return None if found is None else Notice(*found)

    def set(self, text: str | None, by: str) -> Notice:
        """Show `text` on every dashboard from now on, in place of any message before it."""
        notice = Notice(checked_text(text), by, self._clock().replace(microsecond=0))
        self._store.set_notice(BROADCAST, notice.text, notice.set_by, notice.set_at)
        return notice

    def clear(self) -> bool:
        """Take the message down; whether there was one."""
        return self._store.clear_notice(BROADCAST)
