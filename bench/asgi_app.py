"""The ASGI application the ASGI servers of the benchmark and the tests run.

Django's ASGI handler for ``$DJANGO_SETTINGS_MODULE``, with thread hops and
thread starts counted for the whole process (``bench/thread_hops.py``) and one
URL of its own, answered before Django sees the request: ``GET /_stats/``
returns, as JSON, those counts, the process's CPU seconds (user + system, all
threads) and the number of requests Django handled. A client takes the
difference of two readings around its load.

Under ``PYTHONDEVMODE=1`` it also turns on asyncio's debug mode (slow
callbacks reported, ...), which uvicorn turns off on Python 3.11: its
backport of ``asyncio.run()`` passes ``debug=False`` where the standard one
passes ``None``. It is turned on at the first request, on the server's loop,
with the slow-callback threshold of ``$ASGI_SLOW_CALLBACK_SECONDS`` (asyncio's
0.1 s by default).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.core.asgi import get_asgi_application

from bench.thread_hops import install

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

STATS_PATH = "/_stats/"
_SLOW_CALLBACK = float(os.environ.get("ASGI_SLOW_CALLBACK_SECONDS", "0.1"))

_hops = install()
_django = get_asgi_application()
_requests = 0


def stats() -> dict[str, Any]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        **_hops.as_dict(),
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "requests": _requests,
    }


async def application(scope: Scope, receive: Receive, send: Send) -> None:
    global _requests
    if sys.flags.dev_mode:
        loop = asyncio.get_running_loop()
        loop.set_debug(True)
        loop.slow_callback_duration = _SLOW_CALLBACK
    if scope["type"] == "http" and scope["path"] == STATS_PATH:
        body = json.dumps(stats()).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return
    if scope["type"] == "http":
        _requests += 1
    await _django(scope, receive, send)
