"""Browser-test reporting: what went wrong inside the page, attached to a failing test's report."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    page = getattr(item, "funcargs", {}).get("page")
    if report.failed and page is not None:
        report.sections.append(("browser problems", "\n".join(page.problems) or "(none seen)"))
