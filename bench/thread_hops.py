"""Count thread hops (``sync_to_async`` calls) and the threads started.

Every hop from async code to sync code under Django goes through
``asgiref.sync.SyncToAsync.__call__``, and every thread through
``threading.Thread.start``: wrapping the two, while the real methods run,
counts them without changing what runs. A user can do the same in their own
``asgi.py`` to see where a site leaves the event loop.

``count_thread_hops()`` counts within a block (tests); ``install()`` counts
for the rest of the process (the ASGI server of ``bench/asgi.py``).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import SyncToAsync


@dataclass
class ThreadHops:
    #: ``sync_to_async`` calls, by the qualified name of the function run.
    by_function: Counter[str] = field(default_factory=Counter)
    threads_started: int = 0

    @property
    def hops(self) -> int:
        return sum(self.by_function.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "hops": self.hops,
            "hops_by_function": dict(self.by_function),
            "threads_started": self.threads_started,
        }


def _name(function: Any) -> str:
    function = getattr(function, "func", function)  # functools.partial
    module = getattr(function, "__module__", None) or "?"
    name = getattr(function, "__qualname__", None) or type(function).__qualname__
    return f"{module}.{name}"


@contextmanager
def count_thread_hops() -> Iterator[ThreadHops]:
    """Yield the hops and thread starts counted until the block ends."""
    counts, restore = _count()
    try:
        yield counts
    finally:
        restore()


def install() -> ThreadHops:
    """Count for the rest of the process; the counts, updated as it runs."""
    counts, _restore = _count()
    return counts


def _count() -> tuple[ThreadHops, Callable[[], None]]:
    counts = ThreadHops()
    real_call = SyncToAsync.__call__
    real_start = threading.Thread.start

    async def counted_call(self: SyncToAsync[Any, Any], *args: Any, **kw: Any) -> Any:
        counts.by_function[_name(self.func)] += 1
        return await real_call(self, *args, **kw)

    def counted_start(self: threading.Thread) -> None:
        counts.threads_started += 1
        real_start(self)

    def restore() -> None:
        SyncToAsync.__call__ = real_call  # type: ignore[method-assign]
        threading.Thread.start = real_start  # type: ignore[method-assign]

    SyncToAsync.__call__ = counted_call  # type: ignore[method-assign]
    threading.Thread.start = counted_start  # type: ignore[method-assign]
    return counts, restore
