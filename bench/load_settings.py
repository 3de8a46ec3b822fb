"""The example project's settings, on the engine named by ``$BENCH_LOAD_ENGINE``.

The load test serves the example site unchanged but for the session engine
(so that a peer can take our Redis engine's place) and one extra read-only
URL that tells a client its visit counter (see ``bench/load_urls.py``).
"""

from __future__ import annotations

import os

from prologue_example.settings import *  # noqa: F403

from bench.engines import get_engine

_engine = get_engine(os.environ.get("BENCH_LOAD_ENGINE", "prologue-redis"))
_redis_url = os.environ.get("PROLOGUE_EXAMPLE_REDIS_URL", "redis://127.0.0.1:6379/0")

ROOT_URLCONF = "bench.load_urls"
DEBUG = False
SESSION_ENGINE = _engine.module
globals().update(_engine.settings(_redis_url))
