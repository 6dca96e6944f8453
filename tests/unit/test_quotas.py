"""Home quotas kept by watching: the figure, when it is acted on, and the words said."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from emulator.core.quotas import HomeQuotas, HomeUse, used_bytes
from emulator.errors import DiskFull

MB = 1024**2


def test_the_figure_is_what_the_files_take_on_disk_links_not_followed(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one").write_bytes(b"x" * MB)
    (tmp_path / "sparse").touch()
    with open(tmp_path / "sparse", "r+b") as sparse:
        sparse.truncate(100 * MB)  # takes nothing on disk
    (tmp_path / "elsewhere").symlink_to("/usr")
    used, complete = used_bytes(tmp_path)
    assert complete and MB <= used < 2 * MB
    assert used_bytes(tmp_path, max_entries=1)[1] is False


def test_launches_stop_at_90_percent_and_sessions_at_100() -> None:
    assert not HomeUse(89 * MB, 100 * MB).warning
    assert HomeUse(90 * MB, 100 * MB).warning and not HomeUse(90 * MB, 100 * MB).full
    assert HomeUse(100 * MB, 100 * MB).full
    assert not HomeUse(10**12, None).full and not HomeUse(10**12, None).warning  # no quota


def test_a_home_is_walked_at_most_once_per_interval_and_refused_in_words(tmp_path: Path) -> None:
    now = [0.0]
    quotas = HomeQuotas(
        lambda name: tmp_path / name,
        0.01,
        shown_as=lambda name: f"/arc/home/{name}",
        measure_every=60,
        clock=lambda: now[0],
    )
    (tmp_path / "alice").mkdir()
    assert quotas.known("alice") is None
    first = quotas.measure("alice")
    (tmp_path / "alice" / "big").write_bytes(b"x" * (11 * MB))
    assert quotas.known("alice") is first  # within the interval: the figure stands
    now[0] = 61
    assert quotas.known("alice") is None  # past it: measured again
    full = quotas.measure("alice")
    assert full.full
    with pytest.raises(DiskFull, match=r"/arc/home/alice holds 11 MB of its 10 MB quota \(107%\)") as refused:
        quotas.check_launch(full, "alice")
    assert refused.value.status_code == 507
    assert "over its quota" in quotas.stop_reason(full, "alice")
    quotas.check_launch(HomeUse(0, None), "alice")  # nothing said below 90%
    assert not HomeQuotas(lambda n: tmp_path, None, str, 60).enabled


def test_what_sessions_write_in_their_own_containers_counts_and_is_said() -> None:
    use = HomeUse(6 * MB, 10 * MB, written_bytes=5 * MB)
    assert use.full and use.used_bytes == 11 * MB
    words = use.words("/arc/home/alice")
    assert words == (
        "/arc/home/alice holds 6 MB and the sessions' own containers 5 MB, 11 MB in all, of its 10 MB quota (110%)"
    )


def test_callers_asking_at_once_share_one_measurement_and_what_sessions_wrote_counts(tmp_path: Path) -> None:
    asked: list[str] = []

    async def written() -> dict[str, int]:  # as the engine answers: each user's session layers
        asked.append("engine")
        await asyncio.sleep(0.01)
        return {"alice": 3 * MB}

    quotas = HomeQuotas(lambda name: tmp_path / name, 0.01, str, 60, written=written)
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "data").write_bytes(b"x" * MB)

    async def scenario() -> list[HomeUse]:
        return list(await asyncio.gather(quotas.home_use("alice"), quotas.home_use("alice")))

    first, second = asyncio.run(scenario())
    assert first is second and asked == ["engine"]  # one walk, one question to the engine
    assert first.written_bytes == 3 * MB and first.home_bytes >= MB
    assert asyncio.run(quotas.home_use("alice")) is first  # recent: not measured again
    given = asyncio.run(HomeQuotas(lambda name: tmp_path / name, 0.01, str, 60).home_use("alice", {"alice": 7}))
    assert given.written_bytes == 7  # a caller that has the layers' sizes already passes them
