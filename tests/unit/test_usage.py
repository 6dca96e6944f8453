"""Usage accounting: what the store keeps of each session as it ends, added up per user and type (across a
restart of the service), since a moment, and as the admin API answers it (JSON and CSV)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from emulator.api.usage import parse_since, usage_csv, usage_document
from emulator.core.accounting import by_user, summarize
from emulator.core.models import Resources, Status
from emulator.core.store import Store
from emulator.errors import InvalidRequest, Unavailable
from emulator.session_types import SessionType
from tests.factories import NOW, make_session

HOUR = timedelta(hours=1)


def _store(path: Path) -> Store:
    return Store(path, uncounted_types={SessionType.HEADLESS}, batch_types={SessionType.HEADLESS})


def _ran(store: Store, session_id: str, user: str, kind: str, hours: float, cores: float, start: datetime) -> None:
    """A session that started at `start` and ran `hours` before it ended (Succeeded)."""
    session = make_session(
        id=session_id, user=user, type=kind, start_time=start, resources=Resources(cores, cores, 4, 4, fixed=True)
    )
    assert store.admit(session, 10)
    store.mark_running(session_id)
    assert store.finish(session_id, Status.SUCCEEDED, start + hours * HOUR, 0)


def test_usage_kept_as_sessions_end_adds_up_across_a_restart(tmp_path: Path) -> None:
    store = _store(tmp_path / "state.db")
    _ran(store, "s1", "ada", "notebook", 2, 2, NOW)
    _ran(store, "s2", "ada", "headless", 1, 4, NOW)
    store.close()  # the service stops; another starts on the same file
    store = _store(tmp_path / "state.db")
    _ran(store, "s3", "ada", "notebook", 1.5, 1, NOW + 3 * HOUR)
    _ran(store, "s4", "bob", "notebook", 0.5, 2, NOW)
    store.remove("s1")  # the session's row goes; what it used stays
    lines = summarize(store.usage_records())
    store.close()
    assert [(x.user, x.type, x.sessions, x.session_hours, x.core_hours) for x in lines] == [
        ("ada", "headless", 1, 1.0, 4.0),
        ("ada", "notebook", 2, 3.5, 5.5),
        ("bob", "notebook", 1, 0.5, 1.0),
    ]
    totals = by_user(lines)
    assert totals["ada"].type == "all" and totals["ada"].session_hours == 4.5 and totals["ada"].core_hours == 9.5


def test_since_counts_only_the_part_after_it(tmp_path: Path) -> None:
    store = _store(tmp_path / "state.db")
    _ran(store, "s1", "ada", "notebook", 4, 2, NOW)  # ends at NOW + 4 h
    _ran(store, "s2", "ada", "notebook", 1, 2, NOW)  # ended before `since`
    since = NOW + 3 * HOUR
    (line,) = summarize(store.usage_records(since), since)
    store.close()
    assert (line.sessions, line.session_hours, line.core_hours) == (1, 1.0, 2.0)


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("2026-03-01", datetime(2026, 3, 1, tzinfo=UTC)),
        ("2026-03-01T09:30:00Z", datetime(2026, 3, 1, 9, 30, tzinfo=UTC)),
        ("2026-03-01T11:30:00+02:00", datetime(2026, 3, 1, 9, 30, tzinfo=UTC)),
        ("2026-03-01T09:30", datetime(2026, 3, 1, 9, 30, tzinfo=UTC)),
    ],
)
def test_since_is_a_day_or_an_iso_time_in_utc(text: str, wanted: datetime) -> None:
    assert parse_since(text) == wanted


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "", "0001-01-01T00:00:00+05:00", "1\n2"])
def test_a_bad_since_is_one_clear_line(text: str) -> None:
    with pytest.raises(InvalidRequest, match=r"^since: give a day \(YYYY-MM-DD\) or an ISO time") as refused:
        parse_since(text)
    assert "\n" not in refused.value.message


def test_the_answer_has_each_users_types_and_totals_as_json_or_csv(tmp_path: Path) -> None:
    store = _store(tmp_path / "state.db")
    _ran(store, "s1", "ada", "notebook", 2, 2, NOW)
    _ran(store, "s2", "ada", "headless", 1, 4, NOW)
    _ran(store, "s3", "bob", "notebook", 1 / 3, 1, NOW)
    lines = summarize(store.usage_records())
    store.close()
    document = usage_document(lines, None, NOW)
    assert document["since"] is None and document["generated"] == "2026-01-01T00:00:00Z"
    assert [(x["user"], x["type"]) for x in document["usage"]] == [
        ("ada", "headless"),
        ("ada", "notebook"),
        ("bob", "notebook"),
    ]
    assert [(x["user"], x["type"], x["core_hours"]) for x in document["totals"]] == [
        ("ada", "all", 8.0),
        ("bob", "all", 0.333333),
    ]
    rows = list(csv.DictReader(io.StringIO(usage_csv(lines))))
    assert [(r["user"], r["type"], r["sessions"], r["session_hours"]) for r in rows] == [
        ("ada", "headless", "1", "1.0"),
        ("ada", "notebook", "1", "2.0"),
        ("bob", "notebook", "1", "0.333333"),
        ("ada", "all", "2", "3.0"),
        ("bob", "all", "1", "0.333333"),
    ]
    assert usage_csv([]) == "user,type,sessions,session_hours,core_hours,ram_gb_hours,gpu_hours\n"


def test_emulate_usage_shows_each_users_types_then_their_total_when_they_used_more_than_one(tmp_path: Path) -> None:
    from emulator.cli.usage import _rows

    store = _store(tmp_path / "state.db")
    _ran(store, "s1", "ada", "notebook", 2, 2, NOW)
    _ran(store, "s2", "ada", "headless", 1, 4, NOW)
    _ran(store, "s3", "bob", "notebook", 0.5, 1, NOW)
    lines = summarize(store.usage_records())
    store.close()
    assert _rows(usage_document(lines, None, NOW)) == [
        ["ada", "headless", "1", "1.00", "4.00", "4.00", "0.00"],
        ["ada", "notebook", "1", "2.00", "4.00", "8.00", "0.00"],
        ["ada", "(all)", "2", "3.00", "8.00", "12.00", "0.00"],
        ["bob", "notebook", "1", "0.50", "0.50", "2.00", "0.00"],
    ]


@pytest.mark.parametrize("command", [["usage"], ["broadcast"], ["broadcast", "hello"]])
def test_an_admin_command_on_an_instance_that_is_not_up_says_so_and_makes_no_users_file(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from emulator.cli import cli

    monkeypatch.setenv("EMULATE_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("EMULATE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("EMULATE_URL", raising=False)
    monkeypatch.delenv("EMULATE_TOKEN", raising=False)
    result = CliRunner().invoke(cli, ["--instance", "gone", *command])
    assert isinstance(result.exception, Unavailable), result.output  # the CLI's main prints it in one line
    assert str(result.exception).startswith("instance 'gone' is not up; start it with `emulate --instance gone up`")
    assert not (tmp_path / "config").exists()
