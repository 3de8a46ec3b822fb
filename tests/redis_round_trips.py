"""Count the requests redis-py really sends, sync and async.

Every request to the server goes through ``send_packed_command`` of a
connection (a pipeline too, once per batch), so counting its calls while the
real method runs counts round trips. Nothing is faked: the commands reach the
real test server and their answers come back.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import redis.asyncio.connection
import redis.connection


@contextmanager
def count_round_trips() -> Iterator[Counter[str]]:
    """Yield a Counter of ``"sync"`` and ``"async"`` requests sent meanwhile."""
    counts: Counter[str] = Counter()
    sync_class = redis.connection.AbstractConnection
    async_class = redis.asyncio.connection.AbstractConnection
    sync_send = sync_class.send_packed_command
    async_send = async_class.send_packed_command

    def counted_sync_send(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts["sync"] += 1
        return sync_send(self, *args, **kwargs)

    async def counted_async_send(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts["async"] += 1
        return await async_send(self, *args, **kwargs)

    with (
        mock.patch.object(sync_class, "send_packed_command", counted_sync_send),
        mock.patch.object(async_class, "send_packed_command", counted_async_send),
    ):
        yield counts
