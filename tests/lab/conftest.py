"""The lab fixture: one set of namespaces and daemons for the session, torn down at the end.

Lab tests need root. Without it they skip with that reason, unless RUNBOOK_REQUIRE_LAB is set (CI sets
it): then a lab that cannot run is a failure, never a silent skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.lab.lab import Lab, missing_tools


def _cannot_run() -> str | None:
    if os.geteuid() != 0:
        return "lab tests need root (they create network namespaces)"
    missing = missing_tools()
    if missing:
        return f"lab tests need {', '.join(missing)} (Debian packages; .ci/run installs them)"
    return None


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    reason = _cannot_run()
    if reason:
        if os.environ.get("RUNBOOK_REQUIRE_LAB"):
            pytest.fail(f"RUNBOOK_REQUIRE_LAB is set, but {reason}")
        pytest.skip(reason)
    the_lab = Lab().up()
    try:
        yield the_lab
    finally:
        the_lab.down()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/lab/" in str(item.fspath):
            item.add_marker(pytest.mark.lab)
