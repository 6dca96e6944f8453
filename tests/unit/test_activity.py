"""Last activity from the gateway's access log: Caddy's lines read as visits, the file followed through its rolls,
truncations and partial lines, and the newest visit of each session recorded in the store."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from emulator.core.activity import ActivityTracker, newest
from emulator.core.models import Status
from emulator.core.store import Store
from emulator.gateway.access_log import MAX_LINE_BYTES, CaddyAccessLog, LogTail, visit
from emulator.gateway.base import Visit
from emulator.layout import Layout
from tests.factories import NOW, make_session

# As Caddy 2.6.2 writes them through the gateway's filter encoder (no headers, path, host or method).
REACHED = (
    '{"level":"info","ts":1796312869.701474,"logger":"http.log.access.gateway","msg":"handled request",'
    '"request":{"remote_ip":"172.17.0.1","remote_port":"36888","proto":"HTTP/1.1"},"user_id":"abcdefgh",'
    '"duration":0.0000425,"size":2,"status":200}'
)
REFUSED_BY_THE_CHECK = (
    '{"level":"error","ts":1796312869.7128842,"logger":"http.log.access.gateway","msg":"handled request",'
    '"request":{"remote_ip":"172.17.0.1","remote_port":"36896","proto":"HTTP/1.1"},"user_id":"",'
    '"duration":0.0000212,"size":52,"status":401}'
)


def line(session_id: str, when: datetime, status: int = 200) -> str:
    return json.dumps({"ts": when.timestamp(), "user_id": session_id, "status": status, "msg": "handled request"})


def test_a_line_names_the_session_the_request_reached_and_nothing_else() -> None:
    assert visit(REACHED.encode()) == Visit("abcdefgh", datetime(2026, 12, 3, 15, 47, 49, tzinfo=UTC), 200)
    assert visit(REFUSED_BY_THE_CHECK.encode()) is None  # the route's check refused it: it names no session
    for garbage in (b"", b"{", b'{"user_id":"abcdefgh"}', b'{"user_id":"../etc","ts":1,"status":200}', b"\x00" * 9):
        assert visit(garbage) is None, garbage
    assert visit(line("ABCDEFGH", NOW).encode()) is None  # not a session id of ours


def test_refusals_of_the_app_do_not_count_and_the_newest_visit_wins() -> None:
    later = NOW + timedelta(minutes=5)
    visits = [
        Visit("aaaaaaaa", NOW, 200),
        Visit("aaaaaaaa", later, 101),  # a WebSocket, logged as it closed
        Visit("aaaaaaaa", NOW + timedelta(minutes=1), 304),
        Visit("bbbbbbbb", later, 403),  # a notebook's own token check refused a stranger
        Visit("bbbbbbbb", NOW, 401),
    ]
    assert newest(visits) == {"aaaaaaaa": later}


def test_the_tail_waits_for_the_file_and_keeps_a_partial_line_until_it_ends(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    tail = LogTail(path)
    assert tail.lines() == []  # no file yet (the gateway has not loaded its configuration)
    path.write_bytes(b"one\ntw")
    assert tail.lines() == [b"one"]
    with path.open("ab") as log:
        log.write(b"o\nthree\n")
    assert tail.lines() == [b"two", b"three"]
    assert tail.lines() == []
    tail.close()


def test_the_tail_follows_the_file_through_its_rolls(tmp_path: Path) -> None:
    """As Caddy's roller does: the full file renamed (and later compressed, then removed), a new one begun."""
    path = tmp_path / "access.log"
    path.write_bytes(b"a\n")
    tail = LogTail(path)
    assert tail.lines() == [b"a"]
    with path.open("ab") as log:
        log.write(b"b\n")  # written after the read, before the roll: still read, from the old file
    path.rename(tmp_path / "access-2026-12-03T15-00-00.000.log")
    assert tail.lines() == [b"b"]  # the new file not begun yet
    path.write_bytes(b"c\nd\n")
    assert tail.lines() == [b"c", b"d"]
    with path.open("ab") as log:
        log.write(b"e\n")
    os.rename(path, tmp_path / "access-2026-12-03T16-00-00.000.log")
    path.write_bytes(b"f\n")
    (tmp_path / "access-2026-12-03T16-00-00.000.log").unlink()  # compressed away: the open file is still read
    assert tail.lines() == [b"e", b"f"]
    tail.close()


def roll(path: Path, compress: bool = False) -> None:
    """As Caddy's roller does: the full file renamed access-<time of the roll>.log (the time in UTC, to the
    millisecond), a new one begun, the rolled one compressed (the .log removed once the .gz is whole)."""
    time.sleep(0.002)  # a name of its own
    when = datetime.now(UTC)
    rolled = path.with_name(f"{path.stem}-{when:%Y-%m-%dT%H-%M-%S}.{when.microsecond // 1000:03d}{path.suffix}")
    path.rename(rolled)
    path.write_bytes(b"")
    if compress:
        with rolled.open("rb") as plain, gzip.open(rolled.with_name(rolled.name + ".gz"), "wb") as packed:
            shutil.copyfileobj(plain, packed)
        rolled.unlink()


def test_the_tail_reads_the_files_rolled_between_two_reads_once_each(tmp_path: Path) -> None:
    """A flood can fill the file more than once between two reads: the files rolled after the one the tail held
    are read from the roller's files, compressed or not; the one it held, and those before it, not again."""
    path = tmp_path / "access.log"
    (tmp_path / "access-2026-12-01T00-00-00.000.log").write_bytes(b"long ago\n")
    (tmp_path / "access.log.bak").write_bytes(b"not the roller's\n")
    path.write_bytes(b"zero\n")
    tail = LogTail(path)
    assert tail.lines() == [b"zero"]
    roll(path, compress=True)
    path.write_bytes(b"one\n")
    assert tail.lines() == [b"one"]  # once rolled: the rest of the held file, then the new one
    with path.open("ab") as log:
        log.write(b"two\n")
    roll(path, compress=True)  # the held file
    path.write_bytes(b"three\nfour\n")
    roll(path)  # rolled, not compressed yet
    path.write_bytes(b"five and six\n")
    roll(path, compress=True)
    path.write_bytes(b"seven\n")
    assert tail.lines() == [b"two", b"three", b"four", b"five and six", b"seven"]
    assert tail.lines() == []
    tail.close()


def test_the_tail_reads_every_rolled_file_when_the_roller_removed_the_one_it_held(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_bytes(b"a\n")
    tail = LogTail(path)
    assert tail.lines() == [b"a"]
    with path.open("ab") as log:
        log.write(b"b\n")
    roll(path, compress=True)
    path.write_bytes(b"c\n")
    roll(path, compress=True)
    path.write_bytes(b"d\n")
    [held, _] = sorted(tmp_path.glob("access-*.log.gz"))
    held.unlink()  # more rolls than the roller keeps
    assert tail.lines() == [b"b", b"c", b"d"]
    tail.close()


def test_the_tail_starts_over_when_the_file_is_truncated_and_drops_what_is_no_line(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_bytes(b"first line\nsecond line\n")
    tail = LogTail(path)
    assert len(tail.lines()) == 2
    path.write_bytes(b"new\n")  # emptied in place (: > access.log), then written again
    assert tail.lines() == [b"new"]
    with path.open("ab") as log:
        log.write(b"x" * (MAX_LINE_BYTES + 1))
    assert tail.lines() == []
    with path.open("ab") as log:
        log.write(b"x\nafter\n")
    assert tail.lines() == [b"x", b"after"]  # the overlong run was dropped, the lines after it kept
    tail.close()


def test_the_log_is_the_services_alone_before_the_gateway_writes_to_it(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    CaddyAccessLog(path).close()
    assert path.stat().st_mode & 0o777 == 0o600
    path.chmod(0o644)  # as Caddy 2.6 creates it
    CaddyAccessLog(path).close()
    assert path.stat().st_mode & 0o777 == 0o600
    assert Layout(state_dir=tmp_path).access_log == tmp_path / "gateway" / "access.log"


def test_the_tracker_records_each_sessions_newest_visit_and_never_moves_it_back(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db", uncounted_types=[])
    for session_id in ("aaaaaaaa", "bbbbbbbb", "cccccccc"):
        store.admit(make_session(id=session_id, status=Status.RUNNING), 10)
    path = tmp_path / "access.log"
    log = CaddyAccessLog(path)
    tracker = ActivityTracker(store, log)
    later = NOW + timedelta(hours=1)
    lines = [line("aaaaaaaa", NOW), line("aaaaaaaa", later), line("bbbbbbbb", later, 403), line("zzzzzzzz", later)]
    path.write_text("\n".join([REFUSED_BY_THE_CHECK, *lines]) + "\n")
    asyncio.run(tracker.run_once())
    activity = {s.id: s.last_activity for s in store.sessions()}
    assert activity == {"aaaaaaaa": later, "bbbbbbbb": None, "cccccccc": None}
    with path.open("a") as written:
        written.write(line("aaaaaaaa", NOW) + "\n")  # an older line (a WebSocket that opened long ago, closing)
    asyncio.run(tracker.run_once())
    tracker.seen(["cccccccc"], later)
    activity = {s.id: s.last_activity for s in store.sessions()}
    assert activity == {"aaaaaaaa": later, "bbbbbbbb": None, "cccccccc": later}
    log.close()
    store.close()
