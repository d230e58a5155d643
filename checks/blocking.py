"""Run a blocking call (getaddrinfo, http.client) under the run's budget.

In a daemon thread, not the default executor: glibc and sockets can block far longer than the budget, and
the executor's threads are joined at exit, which would hold the process until they return.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def call(fn: Callable[[], T], timeout: float, name: str = "blocking") -> T | BaseException:
    """``fn()``'s result, or the exception it raised; TimeoutError when it outlasts ``timeout``."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T | BaseException] = loop.create_future()

    def deliver(result: T | BaseException) -> None:
        if not future.done():
            future.set_result(result)

    def work() -> None:
        result: T | BaseException
        try:
            result = fn()
        except BaseException as e:  # handed back as data, raised nowhere
            result = e
        with contextlib.suppress(RuntimeError):  # the run is over: nobody waits for the result
            loop.call_soon_threadsafe(deliver, result)

    threading.Thread(target=work, name=name, daemon=True).start()
    return await asyncio.wait_for(future, timeout)
