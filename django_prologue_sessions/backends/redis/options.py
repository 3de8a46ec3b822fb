"""``SESSION_REDIS``: its keys, their defaults, and what makes it unusable.

Kept free of any ``redis`` import so that the system checks can run, and say
that the package is missing, where it is not installed.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.core.exceptions import ImproperlyConfigured

from django_prologue_sessions.conf import DEFAULT_MAX_SESSIONS_PER_USER

# The keys django-redis-sessions reads, so that its users switch engines by
# changing SESSION_ENGINE only ...
COMPATIBLE_KEYS = (
    "host",
    "port",
    "db",
    "password",
    "prefix",
    "socket_timeout",
    "socket_connect_timeout",
    "retry_on_timeout",
    "unix_domain_socket_path",
    "url",
    "sentinel_list",
    "sentinel_master_alias",
)
# ... and ours.
OWN_KEYS = (
    "username",
    "cache_alias",
    "on_unavailable",
    "cluster",
    "startup_nodes",
    "wait_replicas",
    "wait_timeout_ms",
    "max_connections",
    "pool_timeout",
    "health_check_interval",
    "socket_keepalive",
    "client_name",
    "ssl",
    "ssl_ca_certs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_cert_reqs",
    "ssl_check_hostname",
    "user_index",
    "max_sessions_per_user",
)
KNOWN_KEYS = COMPATIBLE_KEYS + OWN_KEYS

# Each names one way to reach Redis; a configuration uses exactly one.
# ``"cluster": True`` turns url, host/port or startup_nodes into the seed
# nodes of a Redis Cluster.
TOPOLOGY_KEYS = {
    "url": ("url",),
    "host": ("host", "port"),
    "unix_domain_socket_path": ("unix_domain_socket_path",),
    "sentinel_list": ("sentinel_list", "sentinel_master_alias"),
    "cache_alias": ("cache_alias",),
    "startup_nodes": ("startup_nodes",),
}
CLUSTER_WAYS = ("url", "host", "startup_nodes")
# Options passed as they are to each connection redis-py makes for the engine.
CONNECTION_KWARGS = (
    "db",
    "username",
    "password",
    "socket_timeout",
    "socket_connect_timeout",
    "socket_keepalive",
    "client_name",
    "health_check_interval",
)
TLS_KEYS = (
    "ssl_ca_certs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_cert_reqs",
    "ssl_check_hostname",
)
# Options of a connection this engine makes itself; a cache_alias brings its own.
CONNECTION_OPTION_KEYS = (
    *CONNECTION_KWARGS,
    "retry_on_timeout",
    "max_connections",
    "pool_timeout",
    "ssl",
    *TLS_KEYS,
)
SSL_CERT_REQS = ("required", "optional", "none")
URL_SCHEMES = ("redis://", "rediss://", "unix://")
ON_UNAVAILABLE = ("raise", "empty")
DJANGO_REDIS_BACKEND = "django_redis.cache.RedisCache"

DEFAULT_PREFIX = "session"
DEFAULT_SOCKET_TIMEOUT = 1.0
DEFAULT_WAIT_TIMEOUT_MS = 100
DEFAULT_POOL_TIMEOUT = 1.0


@dataclass(frozen=True)
class Problem:
    """Why a ``SESSION_REDIS`` cannot work; ``code`` picks the check id."""

    code: int
    message: str
    hint: str | None = None


@dataclass(frozen=True)
class RedisOptions:
    """A valid ``SESSION_REDIS``, with the defaults filled in."""

    topology: str
    prefix: str
    on_unavailable: str
    url: str | None
    host: str
    port: int
    unix_domain_socket_path: str | None
    sentinel_list: tuple[tuple[str, int], ...]
    sentinel_master_alias: str | None
    cache_alias: str | None
    db: int | None
    username: str | None
    password: str | None
    socket_timeout: float | None
    socket_connect_timeout: float | None
    retry_on_timeout: bool
    startup_nodes: tuple[tuple[str, int], ...] = ()
    #: After each write, ``WAIT wait_replicas wait_timeout_ms``; 0 for none.
    wait_replicas: int = 0
    wait_timeout_ms: int = DEFAULT_WAIT_TIMEOUT_MS
    #: With a cap, a blocking pool: a command waits up to ``pool_timeout``.
    max_connections: int | None = None
    pool_timeout: float = DEFAULT_POOL_TIMEOUT
    health_check_interval: float | None = None
    socket_keepalive: bool | None = None
    client_name: str | None = None
    ssl: bool = False
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_cert_reqs: str | None = None
    ssl_check_hostname: bool | None = None
    #: Whether each logged-in user has an index of their sessions, which
    #: listing and revoking them needs.
    user_index: bool = True
    #: A login past it ends the user's sessions whose index entries expire first.
    max_sessions_per_user: int = DEFAULT_MAX_SESSIONS_PER_USER

    @property
    def tls(self) -> bool:
        """Whether the engine's connections use TLS."""
        return self.ssl or (self.url or "").lower().startswith("rediss://")

    @property
    def key_prefix(self) -> str:
        return f"{self.prefix}:" if self.prefix else ""


def parse(value: Any, caches: Mapping[str, Any]) -> RedisOptions:
    """Return the options in ``value``; raise ``ImproperlyConfigured`` if unusable."""
    problems = find_problems(value, caches)
    if problems:
        first = problems[0]
        hint = f" {first.hint}" if first.hint else ""
        raise ImproperlyConfigured(f"{first.message}{hint}")
    options: dict[str, Any] = dict(value or {})
    topology = next((name for name in TOPOLOGY_KEYS if name in options), "host")
    if topology == "sentinel_list":
        topology = "sentinel"
    if options.get("cluster"):
        topology = "cluster"
    socket_timeout = options.get("socket_timeout", DEFAULT_SOCKET_TIMEOUT)
    return RedisOptions(
        topology=topology,
        prefix=options.get("prefix", DEFAULT_PREFIX),
        on_unavailable=options.get("on_unavailable", "raise"),
        url=options.get("url"),
        host=options.get("host", "localhost"),
        port=options.get("port", 6379),
        unix_domain_socket_path=options.get("unix_domain_socket_path"),
        sentinel_list=_pairs(options.get("sentinel_list", ())),
        sentinel_master_alias=options.get("sentinel_master_alias"),
        cache_alias=options.get("cache_alias"),
        db=options.get("db"),
        username=options.get("username"),
        password=options.get("password"),
        socket_timeout=socket_timeout,
        socket_connect_timeout=options.get("socket_connect_timeout", socket_timeout),
        retry_on_timeout=options.get("retry_on_timeout", False),
        startup_nodes=_pairs(options.get("startup_nodes", ())),
        wait_replicas=options.get("wait_replicas", 0),
        wait_timeout_ms=options.get("wait_timeout_ms", DEFAULT_WAIT_TIMEOUT_MS),
        max_connections=options.get("max_connections", _url_max_connections(options)),
        pool_timeout=options.get("pool_timeout", DEFAULT_POOL_TIMEOUT),
        health_check_interval=options.get("health_check_interval"),
        socket_keepalive=options.get("socket_keepalive"),
        client_name=options.get("client_name"),
        ssl=options.get("ssl", False),
        user_index=options.get("user_index", True),
        max_sessions_per_user=options.get(
            "max_sessions_per_user", DEFAULT_MAX_SESSIONS_PER_USER
        ),
        **{key: options.get(key) for key in TLS_KEYS},
    )


def _url_max_connections(options: Mapping[str, Any]) -> int | None:
    """A ``max_connections`` in the URL's query: redis-py caps its pool then,
    which the engine makes a blocking one, as with the key."""
    url = options.get("url")
    if not isinstance(url, str):
        return None
    values = parse_qs(urlsplit(url).query).get("max_connections")
    return int(values[0]) if values and values[0].isdigit() else None


def _pairs(value: Any) -> tuple[tuple[str, int], ...]:
    return tuple((str(host), int(port)) for host, port in value)


def find_problems(value: Any, caches: Mapping[str, Any]) -> list[Problem]:
    """Everything that keeps ``value`` (``SESSION_REDIS``) from working."""
    if value is None:
        return []
    if not isinstance(value, Mapping):
        return [
            Problem(
                20,
                f"SESSION_REDIS must be a dict, not {type(value).__name__}.",
                'For example: SESSION_REDIS = {"url": "redis://127.0.0.1:6379/0"}',
            )
        ]
    problems = _unknown_keys(value)
    problems += _topology_problems(value, caches)
    problems += _type_problems(value)
    problems += _cluster_problems(value)
    problems += _wait_problems(value)
    problems += _pool_problems(value)
    problems += _tls_problems(value)
    problems += _index_problems(value)
    return problems


def _unknown_keys(options: Mapping[Any, Any]) -> list[Problem]:
    problems = []
    for key in options:
        if key in KNOWN_KEYS:
            continue
        close = difflib.get_close_matches(str(key).lower(), KNOWN_KEYS, n=1)
        suggestion = f"Did you mean {close[0]!r}? " if close else ""
        problems.append(
            Problem(
                21,
                f"SESSION_REDIS has an unknown key {key!r}.",
                f"{suggestion}Known keys: {', '.join(KNOWN_KEYS)}.",
            )
        )
    return problems


def _topology_problems(
    options: Mapping[Any, Any], caches: Mapping[str, Any]
) -> list[Problem]:
    # Each way by the keys the user wrote: {"url": ..., "port": ...} is
    # "'url' and 'port'", not the names of the ways.
    written = {
        name: [key for key in keys if key in options]
        for name, keys in TOPOLOGY_KEYS.items()
    }
    ways = [name for name, keys in written.items() if keys]
    if len(ways) > 1:
        return [
            Problem(
                22,
                "SESSION_REDIS names more than one way to reach Redis: "
                + " and ".join("/".join(map(repr, written[way])) for way in ways)
                + ".",
                "Keep one of url, host (with port), unix_domain_socket_path, "
                "sentinel_list (with sentinel_master_alias), cache_alias or "
                "startup_nodes (with cluster).",
            )
        ]
    problems = []
    url = options.get("url")
    if "url" in options and not (
        isinstance(url, str) and url.lower().startswith(URL_SCHEMES)
    ):
        problems.append(
            Problem(
                24,
                f"SESSION_REDIS['url'] must be a redis://, rediss:// or unix:// "
                f"URL, not {url!r}.",
            )
        )
    if "cache_alias" in options:
        problems += _cache_alias_problems(options, caches)
    if ways == ["sentinel_list"]:
        problems += _sentinel_problems(options)
    return problems


def _cache_alias_problems(
    options: Mapping[Any, Any], caches: Mapping[str, Any]
) -> list[Problem]:
    alias = options["cache_alias"]
    ignored = [key for key in CONNECTION_OPTION_KEYS if key in options]
    if ignored:
        return [
            Problem(
                23,
                "SESSION_REDIS takes its connection from cache_alias, so "
                f"{', '.join(ignored)} would have no effect.",
                f"Set them in CACHES[{alias!r}] instead.",
            )
        ]
    if not isinstance(alias, str) or alias not in caches:
        return [
            Problem(
                25,
                f"SESSION_REDIS['cache_alias'] is {alias!r}, which is not in CACHES.",
                f"CACHES has: {', '.join(map(repr, caches)) or 'nothing'}.",
            )
        ]
    backend = (caches[alias] or {}).get("BACKEND")
    if backend != DJANGO_REDIS_BACKEND:
        return [
            Problem(
                26,
                f"SESSION_REDIS['cache_alias'] is {alias!r}, whose BACKEND "
                f"{backend!r} is not a django-redis cache.",
                f"Point it at a cache with BACKEND {DJANGO_REDIS_BACKEND!r}, or "
                "give SESSION_REDIS a url instead.",
            )
        ]
    return []


def _sentinel_problems(options: Mapping[Any, Any]) -> list[Problem]:
    problems = []
    sentinels = options.get("sentinel_list")
    if not _is_address_list(sentinels):
        problems.append(
            Problem(
                29,
                "SESSION_REDIS['sentinel_list'] must be a non-empty list of "
                f"(host, port) pairs, not {sentinels!r}.",
                'For example: [("10.0.0.1", 26379), ("10.0.0.2", 26379)]',
            )
        )
    alias = options.get("sentinel_master_alias")
    if not (isinstance(alias, str) and alias):
        problems.append(
            Problem(
                29,
                "SESSION_REDIS with sentinels needs sentinel_master_alias, the "
                f"name of the monitored master (it is {alias!r}).",
            )
        )
    return problems


def _is_address_list(value: Any) -> bool:
    return (
        isinstance(value, list | tuple)
        and bool(value)
        and all(
            isinstance(pair, list | tuple)
            and len(pair) == 2
            and isinstance(pair[0], str)
            and _is_port(pair[1])
            for pair in value
        )
    )


def _cluster_problems(options: Mapping[Any, Any]) -> list[Problem]:
    if not options.get("cluster"):
        if "startup_nodes" in options:
            return [
                Problem(
                    31,
                    "SESSION_REDIS['startup_nodes'] names the nodes of a Redis "
                    "Cluster, but cluster is not True.",
                    'Add "cluster": True.',
                )
            ]
        return []
    problems = []
    others = [
        name
        for name, keys in TOPOLOGY_KEYS.items()
        if name not in CLUSTER_WAYS and any(key in options for key in keys)
    ]
    if others:
        problems.append(
            Problem(
                31,
                "SESSION_REDIS with cluster reaches the cluster through url, "
                f"host/port or startup_nodes, not {' or '.join(others)}.",
            )
        )
    url = options.get("url")
    if isinstance(url, str) and url.lower().startswith("unix://"):
        problems.append(
            Problem(
                31,
                "SESSION_REDIS with cluster needs a redis:// or rediss:// url: "
                "a cluster's nodes are reached over TCP.",
            )
        )
    elif isinstance(url, str) and urlsplit(url).path.strip("/") not in ("", "0"):
        problems.append(
            Problem(
                31,
                f"SESSION_REDIS['url'] is {url!r}, but a Redis Cluster has "
                "database 0 only.",
                "Drop the database number from the URL.",
            )
        )
    if options.get("db") not in (None, 0):
        problems.append(
            Problem(
                31,
                "SESSION_REDIS with cluster cannot use db: a Redis Cluster has "
                "database 0 only.",
            )
        )
    if "startup_nodes" in options and not _is_address_list(options["startup_nodes"]):
        problems.append(
            Problem(
                31,
                "SESSION_REDIS['startup_nodes'] must be a non-empty list of "
                f"(host, port) pairs, not {options['startup_nodes']!r}.",
                'For example: [("10.0.0.1", 7000), ("10.0.0.2", 7000)]',
            )
        )
    return problems


def _wait_problems(options: Mapping[Any, Any]) -> list[Problem]:
    problems = []
    replicas = options.get("wait_replicas", 0)
    if "wait_timeout_ms" in options and not replicas:
        problems.append(
            Problem(
                32,
                "SESSION_REDIS['wait_timeout_ms'] has no effect without wait_replicas.",
                "Set wait_replicas to the number of replicas a write must "
                "reach, or drop wait_timeout_ms.",
            )
        )
    timeout_ms = options.get("wait_timeout_ms", DEFAULT_WAIT_TIMEOUT_MS)
    socket_timeout = options.get("socket_timeout", DEFAULT_SOCKET_TIMEOUT)
    if (
        replicas
        and _is_wait_timeout(timeout_ms)
        and _is_timeout(socket_timeout)
        and socket_timeout is not None
        and timeout_ms >= socket_timeout * 1000
    ):
        problems.append(
            Problem(
                32,
                f"SESSION_REDIS['wait_timeout_ms'] ({timeout_ms}) is not below "
                f"socket_timeout ({socket_timeout} s): a replica that lags would "
                "make every save time out, which counts as Redis being "
                "unavailable.",
                "Keep wait_timeout_ms well below socket_timeout * 1000.",
            )
        )
    return problems


def _pool_problems(options: Mapping[Any, Any]) -> list[Problem]:
    if "pool_timeout" in options and "max_connections" not in options:
        return [
            Problem(
                33,
                "SESSION_REDIS['pool_timeout'] has no effect without max_connections.",
                "Set max_connections to cap the connections per process; a "
                "request then waits up to pool_timeout seconds for a free one.",
            )
        ]
    pool_less = options.get("cluster") or "sentinel_list" in options
    if "pool_timeout" in options and pool_less:
        return [
            Problem(
                33,
                "SESSION_REDIS['pool_timeout'] has no effect with sentinel_list or "
                "cluster: redis-py has no blocking pool for them, so a command "
                "over max_connections fails at once.",
                "Drop pool_timeout.",
            )
        ]
    return []


def _tls_problems(options: Mapping[Any, Any]) -> list[Problem]:
    tls_keys = [key for key in TLS_KEYS if key in options]
    url = options.get("url")
    tls = options.get("ssl") or (
        isinstance(url, str) and url.lower().startswith("rediss://")
    )
    if tls_keys and not tls:
        return [
            Problem(
                34,
                f"SESSION_REDIS has {', '.join(tls_keys)}, which only apply to "
                "TLS connections, but TLS is off.",
                'Add "ssl": True, or use a rediss:// url.',
            )
        ]
    if (
        options.get("ssl")
        and isinstance(url, str)
        and not url.lower().startswith("rediss://")
    ):
        return [
            Problem(
                34,
                "SESSION_REDIS['ssl'] is True, but the url is not rediss://.",
                "A url says whether it uses TLS: write rediss:// and drop ssl.",
            )
        ]
    return []


def _index_problems(options: Mapping[Any, Any]) -> list[Problem]:
    if "max_sessions_per_user" in options and options.get("user_index") is False:
        return [
            Problem(
                36,
                "SESSION_REDIS['max_sessions_per_user'] has no effect with "
                "user_index False: without the index, a user's sessions are "
                "not counted.",
                "Drop max_sessions_per_user, or user_index to turn the index back on.",
            )
        ]
    return []


def _is_wait_timeout(value: Any) -> bool:
    # WAIT's 0 means "block forever": a save must never do that.
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _is_port(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536


def _is_timeout(value: Any) -> bool:
    return value is None or (
        isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    )


def _is_optional_str(value: Any) -> bool:
    return value is None or isinstance(value, str)


_TYPE_RULES: dict[str, tuple[Any, str]] = {
    "host": (lambda v: isinstance(v, str) and bool(v), "a host name"),
    "port": (_is_port, "a port number (1-65535)"),
    "db": (
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
        "a database number (0 or more)",
    ),
    "username": (_is_optional_str, "a string or None"),
    "password": (_is_optional_str, "a string or None"),
    "prefix": (lambda v: isinstance(v, str), "a string ('' for none)"),
    "socket_timeout": (_is_timeout, "a number of seconds above 0, or None"),
    "socket_connect_timeout": (_is_timeout, "a number of seconds above 0, or None"),
    "retry_on_timeout": (lambda v: isinstance(v, bool), "True or False"),
    "unix_domain_socket_path": (
        lambda v: isinstance(v, str) and bool(v),
        "the path of a socket file",
    ),
    "cluster": (lambda v: isinstance(v, bool), "True or False"),
    "wait_replicas": (
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
        "a number of replicas (0 or more; 0 waits for none)",
    ),
    "wait_timeout_ms": (
        _is_wait_timeout,
        "a number of milliseconds above 0 (WAIT's 0 would block forever)",
    ),
    "max_connections": (
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
        "a number of connections above 0",
    ),
    "pool_timeout": (
        lambda v: _is_timeout(v) and v is not None,
        "a number of seconds above 0",
    ),
    "health_check_interval": (
        lambda v: isinstance(v, int | float) and not isinstance(v, bool) and v >= 0,
        "a number of seconds (0 for no health checks)",
    ),
    "socket_keepalive": (lambda v: isinstance(v, bool), "True or False"),
    "client_name": (
        lambda v: isinstance(v, str) and bool(v) and " " not in v,
        "a name without spaces",
    ),
    "ssl": (lambda v: isinstance(v, bool), "True or False"),
    "ssl_ca_certs": (lambda v: isinstance(v, str) and bool(v), "a file path"),
    "ssl_certfile": (lambda v: isinstance(v, str) and bool(v), "a file path"),
    "ssl_keyfile": (lambda v: isinstance(v, str) and bool(v), "a file path"),
    "ssl_cert_reqs": (
        lambda v: v in SSL_CERT_REQS,
        "'required', 'optional' or 'none'",
    ),
    "ssl_check_hostname": (lambda v: isinstance(v, bool), "True or False"),
    "user_index": (lambda v: isinstance(v, bool), "True or False"),
    "max_sessions_per_user": (
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
        "a number of sessions above 0",
    ),
}


def _type_problems(options: Mapping[Any, Any]) -> list[Problem]:
    problems = []
    for key, (is_valid, expected) in _TYPE_RULES.items():
        if key in options and not is_valid(options[key]):
            problems.append(
                Problem(
                    27,
                    f"SESSION_REDIS[{key!r}] must be {expected}, not {options[key]!r}.",
                )
            )
    if "on_unavailable" in options and options["on_unavailable"] not in ON_UNAVAILABLE:
        problems.append(
            Problem(
                28,
                "SESSION_REDIS['on_unavailable'] must be 'raise' or 'empty', not "
                f"{options['on_unavailable']!r}.",
                "'raise' (the default) fails the request with "
                "SessionStoreUnavailable; 'empty' serves it with an empty "
                "session that is never saved.",
            )
        )
    return problems
