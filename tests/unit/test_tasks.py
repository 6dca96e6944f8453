"""SessionTasks: one background task per session, forgotten once done, its failure logged, cancelled on demand."""

from __future__ import annotations

import asyncio
import logging

import pytest

from emulator.core.tasks import SessionTasks


def test_a_task_is_forgotten_once_done_and_its_failure_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        tasks = SessionTasks("fault")

        async def fail() -> None:
            raise RuntimeError("boom")

        tasks.start("s1", fail())
        task = tasks.get("s1")
        assert task is not None and task.get_name() == "fault-s1" and tasks.running() == [task]
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0)  # the done callback runs on the next turn of the loop
        assert tasks.get("s1") is None and tasks.running() == []

    with caplog.at_level(logging.ERROR, logger="emulator.core.tasks"):
        asyncio.run(scenario())
    assert [r.getMessage() for r in caplog.records] == ["fault of session s1 failed"]


def test_a_cancelled_task_started_again_keeps_the_new_one() -> None:
    async def scenario() -> None:
        tasks = SessionTasks("bring-up")
        tasks.start("s1", asyncio.sleep(60))
        first = tasks.get("s1")
        tasks.cancel("s1")
        tasks.start("s1", asyncio.sleep(60))
        second = tasks.get("s1")
        await asyncio.sleep(0)  # the first one's done callback runs: it must not forget the second
        assert first is not None and first.cancelled() and second is not None and tasks.get("s1") is second
        tasks.cancel("s1")
        tasks.cancel("s1")  # a second cancel of none is nothing
        assert tasks.running() == []

    asyncio.run(scenario())
