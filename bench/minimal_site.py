"""A minimal Django site on a Redis server, for the benchmarks that run one
process of their own (``bench.activity``, ``bench.expiry``): its settings,
its views (a login, a read of the session, an anonymous visit that keeps a
CSRF token), and how their results are written.

``configure()`` makes this module the ``ROOT_URLCONF``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def configure(redis_url: str, middleware: list[str], **more: Any) -> None:
    """Django set up on our Redis engine at ``redis_url`` (``more`` settings
    on top), with users that live in no database."""
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        DEBUG_PROPAGATE_EXCEPTIONS=True,
        SECRET_KEY="bench-not-secret",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        SESSION_ENGINE="django_prologue_sessions.backends.redis",
        SESSION_REDIS={"url": redis_url},
        MIDDLEWARE=middleware,
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
            "django_prologue_sessions",
        ],
        DATABASES={},
        USE_TZ=True,
        **more,
    )
    django.setup()
    # login() saves the user's last_login; these users live in no database.
    from django.contrib.auth import user_logged_in

    user_logged_in.disconnect(dispatch_uid="update_last_login")


def login_view(request: Any, number: int) -> Any:
    from django.contrib.auth import login
    from django.contrib.auth.models import User
    from django.http import HttpResponse

    user = User(pk=number, username=f"user{number}")
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return HttpResponse("ok")


def read_view(request: Any) -> Any:
    from django.http import HttpResponse

    return HttpResponse(str(request.session.get("_auth_user_id")))


def visit_view(request: Any) -> Any:
    from django.http import HttpResponse
    from django.middleware.csrf import get_token

    return HttpResponse(get_token(request))


def __getattr__(name: str) -> Any:
    # ROOT_URLCONF is this module: its URLs exist once Django is set up.
    if name == "urlpatterns":
        from django.urls import path

        return [
            path("login/<int:number>/", login_view),
            path("read/", read_view),
            path("visit/", visit_view),
        ]
    raise AttributeError(name)


def server_name(info: dict[str, Any]) -> str:
    """``valkey 9.1.2`` or ``redis 7.0.15``, from ``INFO server``."""
    if "valkey_version" in info:
        return f"valkey {info['valkey_version']}"
    return f"redis {info['redis_version']}"


def write_results(out: Path, name: str, results: dict[str, Any], table: str) -> None:
    """``<name>.json`` and ``<name>.md`` in ``out``; the table printed too."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / f"{name}.md").write_text(table)
    print(table)
