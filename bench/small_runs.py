"""What the small benchmarks (``bench.activity``, ``bench.migrate_from``)
share: Django set up in their process, the name of the Redis server, the
fastest of the rounds, and their two result files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def setup_django(urlconf: str, **more: Any) -> None:
    """Configure and set up Django: no debug, no database, URLs of ``urlconf``."""
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        DEBUG_PROPAGATE_EXCEPTIONS=True,
        SECRET_KEY="bench-not-secret",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=urlconf,
        DATABASES={},
        USE_TZ=True,
        **more,
    )
    django.setup()


def server_name(info: dict[str, Any]) -> str:
    """``INFO server`` as "valkey 9.1.2" or "redis 7.0.15"."""
    if "valkey_version" in info:
        return f"valkey {info['valkey_version']}"
    return f"redis {info['redis_version']}"


def fastest(timings: dict[str, list[float]]) -> dict[str, float]:
    """Each label's fastest time (other work on the machine only adds)."""
    return {label: round(min(values), 1) for label, values in timings.items()}


def write(out: Path, stem: str, results: dict[str, Any], table: str) -> None:
    """``<stem>.json`` and ``<stem>.md`` in ``out``; the table printed too."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / f"{stem}.md").write_text(table)
    print(table)
