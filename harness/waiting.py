"""The one polling loop of the tests and the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(
    predicate: Callable[[], Any], timeout: float = 15, message: str = "", interval: float = 0.1
) -> Any:
    """Call ``predicate`` every ``interval`` seconds until it returns something true, and
    return that; ``AssertionError`` after ``timeout`` seconds (it is asked once more at the
    deadline, so a slow predicate still gets its last chance)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate}")
        time.sleep(interval)
