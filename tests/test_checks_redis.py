"""System checks of the Redis engine's settings (ids E020-E039)."""

from __future__ import annotations

import sys
from typing import Any
from unittest import mock

from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import SimpleTestCase, override_settings

from django_prologue_sessions.checks import _check_redis_settings

ENGINE = "django_prologue_sessions.backends.redis"
DJANGO_REDIS_CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "sessions": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379/1",
    },
}


class RedisChecksTests(SimpleTestCase):
    def ids(self, value: Any, **more: Any) -> list[str]:
        with override_settings(SESSION_ENGINE=ENGINE, SESSION_REDIS=value, **more):
            return [error.id or "" for error in _check_redis_settings()]

    def assert_only(self, expected_id: str, value: Any, **more: Any) -> None:
        self.assertEqual(self.ids(value, **more), [expected_id])

    def test_working_settings_pass(self) -> None:
        working: list[Any] = [
            None,
            {},
            {"url": "redis://127.0.0.1:6379/0", "prefix": "session"},
            {"url": "rediss://user:pw@redis.example.com:6380/2"},
            {"url": "unix:///run/redis.sock?db=1", "on_unavailable": "empty"},
            {"host": "10.0.0.5", "port": 6380, "db": 3, "password": "pw"},
            {
                "host": "localhost",
                "socket_timeout": 0.25,
                "socket_connect_timeout": None,
                "retry_on_timeout": True,
                "prefix": "",
            },
            {"unix_domain_socket_path": "/run/redis.sock", "db": 0},
            {
                "sentinel_list": [("10.0.0.1", 26379), ["10.0.0.2", 26379]],
                "sentinel_master_alias": "mymaster",
                "password": "pw",
                "wait_replicas": 1,
            },
            {"cluster": True, "url": "redis://10.0.0.1:7000"},
            {"cluster": True, "url": "rediss://10.0.0.1:7000/0", "prefix": "s"},
            {"cluster": True, "host": "10.0.0.1", "port": 7000, "db": 0},
            {
                "cluster": True,
                "startup_nodes": [("10.0.0.1", 7000), ["10.0.0.2", 7001]],
                "wait_replicas": 1,
                "wait_timeout_ms": 50,
            },
            {"cluster": False, "url": "redis://x"},
            {"url": "redis://x", "wait_replicas": 0},
            {"url": "redis://x", "wait_replicas": 2, "wait_timeout_ms": 900},
            {"url": "redis://x", "wait_replicas": 1, "socket_timeout": None},
        ]
        for value in working:
            with self.subTest(value=value):
                self.assertEqual(self.ids(value), [])
        self.assertEqual(
            self.ids({"cache_alias": "sessions"}, CACHES=DJANGO_REDIS_CACHES), []
        )

    def test_other_engines_are_not_checked(self) -> None:
        with override_settings(
            SESSION_ENGINE="redis_sessions.session",
            SESSION_REDIS={"POOL": [], "host": 1},
        ):
            self.assertEqual(_check_redis_settings(), [])

    def test_not_a_dict_is_e020(self) -> None:
        for value in ("redis://127.0.0.1:6379/0", ["url"], 1):
            with self.subTest(value=value):
                self.assert_only("django_prologue_sessions.E020", value)

    def test_unknown_key_is_e021_with_a_suggestion(self) -> None:
        with override_settings(
            SESSION_ENGINE=ENGINE, SESSION_REDIS={"url": "redis://x", "prefx": "s"}
        ):
            (error,) = _check_redis_settings()
        self.assertEqual(error.id, "django_prologue_sessions.E021")
        self.assertIn("'prefx'", error.msg)
        self.assertIn("Did you mean 'prefix'?", error.hint or "")
        self.assert_only("django_prologue_sessions.E021", {"POOL": []})

    def test_more_than_one_way_to_reach_redis_is_e022(self) -> None:
        for value in (
            {"url": "redis://127.0.0.1:6379/0", "host": "127.0.0.1"},
            {"url": "redis://127.0.0.1:6379/0", "port": 6379},
            {"host": "127.0.0.1", "unix_domain_socket_path": "/run/redis.sock"},
            {"url": "redis://x", "sentinel_list": [("a", 1)]},
        ):
            with self.subTest(value=value):
                self.assert_only("django_prologue_sessions.E022", value)
        self.assert_only(
            "django_prologue_sessions.E022",
            {"cache_alias": "sessions", "url": "redis://x"},
            CACHES=DJANGO_REDIS_CACHES,
        )

    def test_e022_names_the_keys_that_were_written(self) -> None:
        for value, named in (
            ({"url": "redis://x", "port": 6379}, "'url' and 'port'"),
            ({"url": "redis://x", "host": "h", "port": 1}, "'url' and 'host'/'port'"),
            (
                {"sentinel_master_alias": "m", "unix_domain_socket_path": "/s"},
                "'unix_domain_socket_path' and 'sentinel_master_alias'",
            ),
        ):
            with (
                self.subTest(value=value),
                override_settings(SESSION_ENGINE=ENGINE, SESSION_REDIS=value),
            ):
                (error,) = _check_redis_settings()
                self.assertEqual(error.id, "django_prologue_sessions.E022")
                self.assertEqual(
                    error.msg,
                    f"SESSION_REDIS names more than one way to reach Redis: {named}.",
                )

    def test_connection_options_beside_cache_alias_are_e023(self) -> None:
        self.assert_only(
            "django_prologue_sessions.E023",
            {"cache_alias": "sessions", "db": 2, "socket_timeout": 1},
            CACHES=DJANGO_REDIS_CACHES,
        )

    def test_url_that_is_not_redis_is_e024(self) -> None:
        for url in ("http://127.0.0.1:6379", "127.0.0.1:6379", 6379, None):
            with self.subTest(url=url):
                self.assert_only("django_prologue_sessions.E024", {"url": url})

    def test_cache_alias_not_in_caches_is_e025(self) -> None:
        self.assert_only("django_prologue_sessions.E025", {"cache_alias": "nope"})

    def test_cache_alias_not_django_redis_is_e026(self) -> None:
        caches = {
            "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache"},
        }
        with override_settings(
            SESSION_ENGINE=ENGINE,
            SESSION_REDIS={"cache_alias": "default"},
            CACHES=caches,
        ):
            (error,) = _check_redis_settings()
        self.assertEqual(error.id, "django_prologue_sessions.E026")
        self.assertIn("not a django-redis cache", error.msg)

    def test_wrong_types_are_e027(self) -> None:
        bad: dict[str, list[Any]] = {
            "host": ["", 127],
            "port": [0, 70000, "6379", True],
            "db": [-1, "0", 1.0, False],
            "password": [123],
            "username": [["u"]],
            "prefix": [None, 1],
            "socket_timeout": [0, -1, "1", True],
            "socket_connect_timeout": [0, "fast"],
            "retry_on_timeout": [1, "yes", None],
            "unix_domain_socket_path": ["", 1],
            "cluster": [1, "yes", None],
            "wait_replicas": [-1, "1", True, 1.5],
        }
        for key, values in bad.items():
            for value in values:
                with self.subTest(key=key, value=value):
                    self.assert_only("django_prologue_sessions.E027", {key: value})

    def test_unknown_on_unavailable_is_e028(self) -> None:
        for value in ("ignore", None, True):
            with self.subTest(value=value):
                self.assert_only(
                    "django_prologue_sessions.E028", {"on_unavailable": value}
                )

    def test_bad_sentinel_settings_are_e029(self) -> None:
        for value in (
            {"sentinel_list": [], "sentinel_master_alias": "m"},
            {"sentinel_list": ["10.0.0.1:26379"], "sentinel_master_alias": "m"},
            {"sentinel_list": [("10.0.0.1", "26379")], "sentinel_master_alias": "m"},
            {"sentinel_list": [("10.0.0.1", 26379)]},
            {"sentinel_master_alias": "m"},
        ):
            with self.subTest(value=value):
                self.assertEqual(
                    set(self.ids(value)), {"django_prologue_sessions.E029"}
                )

    def test_bad_wait_timeout_is_e027(self) -> None:
        for value in (0, -5, 1.5, "100", True, None):
            with self.subTest(value=value):
                self.assert_only(
                    "django_prologue_sessions.E027",
                    {"wait_replicas": 1, "wait_timeout_ms": value},
                )

    def test_bad_cluster_settings_are_e031(self) -> None:
        for value in (
            {"startup_nodes": [("10.0.0.1", 7000)]},
            {"cluster": False, "startup_nodes": [("10.0.0.1", 7000)]},
            {"cluster": True, "unix_domain_socket_path": "/run/redis.sock"},
            {"cluster": True, "url": "unix:///run/redis.sock"},
            {"cluster": True, "url": "redis://10.0.0.1:7000/2"},
            {"cluster": True, "host": "10.0.0.1", "db": 1},
            {"cluster": True, "startup_nodes": []},
            {"cluster": True, "startup_nodes": ["10.0.0.1:7000"]},
            {
                "cluster": True,
                "sentinel_list": [("10.0.0.1", 26379)],
                "sentinel_master_alias": "m",
            },
        ):
            with self.subTest(value=value):
                self.assert_only("django_prologue_sessions.E031", value)
        self.assert_only(
            "django_prologue_sessions.E031",
            {"cluster": True, "cache_alias": "sessions"},
            CACHES=DJANGO_REDIS_CACHES,
        )

    def test_two_ways_to_a_cluster_is_e022(self) -> None:
        self.assert_only(
            "django_prologue_sessions.E022",
            {"cluster": True, "url": "redis://x", "startup_nodes": [("x", 1)]},
        )

    def test_wait_settings_that_cannot_work_are_e032(self) -> None:
        for value in (
            {"url": "redis://x", "wait_timeout_ms": 100},
            {"url": "redis://x", "wait_replicas": 0, "wait_timeout_ms": 100},
            {"url": "redis://x", "wait_replicas": 1, "wait_timeout_ms": 1000},
            {
                "url": "redis://x",
                "wait_replicas": 1,
                "wait_timeout_ms": 300,
                "socket_timeout": 0.25,
            },
        ):
            with self.subTest(value=value):
                self.assert_only("django_prologue_sessions.E032", value)

    def test_cluster_and_wait_options_are_parsed(self) -> None:
        from django_prologue_sessions.backends.redis.options import parse

        options = parse(
            {
                "cluster": True,
                "startup_nodes": [["10.0.0.1", 7000]],
                "wait_replicas": 2,
            },
            {},
        )
        self.assertEqual(options.topology, "cluster")
        self.assertEqual(options.startup_nodes, (("10.0.0.1", 7000),))
        self.assertEqual((options.wait_replicas, options.wait_timeout_ms), (2, 100))
        plain = parse({"url": "redis://x", "cluster": False}, {})
        self.assertEqual((plain.topology, plain.wait_replicas), ("url", 0))

    def test_missing_redis_package_is_e030(self) -> None:
        with mock.patch.dict(sys.modules, {"redis": None}):
            self.assert_only("django_prologue_sessions.E030", {})

    def test_every_problem_is_reported(self) -> None:
        self.assertEqual(
            self.ids({"url": "http://x", "port": "1", "on_unavailable": "x", "z": 1}),
            [
                "django_prologue_sessions.E021",
                "django_prologue_sessions.E022",
                "django_prologue_sessions.E027",
                "django_prologue_sessions.E028",
            ],
        )

    def test_user_index_off_is_reported_as_information(self) -> None:
        self.assert_only("django_prologue_sessions.I035", {"user_index": False})
        self.assertEqual(self.ids({"user_index": True}), [])
        self.assert_only("django_prologue_sessions.E027", {"user_index": "no"})

    def test_max_sessions_per_user_is_a_positive_int_e027(self) -> None:
        for value in (1, 100, 10_000):
            with self.subTest(value=value):
                self.assertEqual(self.ids({"max_sessions_per_user": value}), [])
        for value in (0, -1, True, 1.5, "100", None):
            with self.subTest(value=value):
                self.assert_only(
                    "django_prologue_sessions.E027", {"max_sessions_per_user": value}
                )

    def test_max_sessions_per_user_without_the_index_is_e036(self) -> None:
        self.assertEqual(
            self.ids({"user_index": False, "max_sessions_per_user": 5}),
            ["django_prologue_sessions.E036", "django_prologue_sessions.I035"],
        )

    def test_manage_py_check_reports_it(self) -> None:
        with (
            override_settings(SESSION_ENGINE=ENGINE, SESSION_REDIS={"hots": "x"}),
            self.assertRaisesMessage(SystemCheckError, "django_prologue_sessions.E021"),
        ):
            call_command("check")


class ConnectionOptionChecksTests(SimpleTestCase):
    """The keys of redis-py's connection options: E027 for a wrong type,
    E033 and E034 for a combination that cannot work."""

    def ids(self, value: Any) -> list[str]:
        with override_settings(SESSION_ENGINE=ENGINE, SESSION_REDIS=value):
            return [error.id or "" for error in _check_redis_settings()]

    def test_working_connection_options_pass(self) -> None:
        working: list[Any] = [
            {"url": "redis://x", "max_connections": 20, "pool_timeout": 0.5},
            {"url": "redis://x/0?max_connections=20"},
            {"host": "x", "health_check_interval": 30, "socket_keepalive": True},
            {"host": "x", "health_check_interval": 0, "client_name": "web-1"},
            {
                "host": "x",
                "ssl": True,
                "ssl_ca_certs": "/etc/ca.pem",
                "ssl_certfile": "/etc/client.pem",
                "ssl_keyfile": "/etc/client.key",
                "ssl_cert_reqs": "required",
                "ssl_check_hostname": True,
            },
            {"url": "rediss://x", "ssl_cert_reqs": "none"},
            {"cluster": True, "url": "rediss://x:7000", "max_connections": 8},
        ]
        for value in working:
            with self.subTest(value=value):
                self.assertEqual(self.ids(value), [])

    def test_wrong_types_are_e027(self) -> None:
        for key, value in [
            ("max_connections", 0),
            ("max_connections", "10"),
            ("pool_timeout", 0),
            ("health_check_interval", -1),
            ("socket_keepalive", "yes"),
            ("client_name", "has space"),
            ("client_name", ""),
            ("ssl", 1),
            ("ssl_cert_reqs", "maybe"),
            ("ssl_check_hostname", "no"),
        ]:
            options = {"host": "x", key: value}
            if key == "pool_timeout":
                options["max_connections"] = 2
            if key.startswith("ssl_"):
                options["ssl"] = True
            with self.subTest(key=key, value=value):
                self.assertEqual(self.ids(options), ["django_prologue_sessions.E027"])

    def test_pool_timeout_without_a_blocking_pool_is_e033(self) -> None:
        for value in [
            {"host": "x", "pool_timeout": 2},
            {
                "sentinel_list": [("x", 26379)],
                "sentinel_master_alias": "m",
                "max_connections": 2,
                "pool_timeout": 2,
            },
            {
                "cluster": True,
                "url": "redis://x",
                "max_connections": 2,
                "pool_timeout": 2,
            },
        ]:
            with self.subTest(value=value):
                self.assertEqual(self.ids(value), ["django_prologue_sessions.E033"])

    def test_tls_keys_without_tls_are_e034(self) -> None:
        for value in [
            {"host": "x", "ssl_ca_certs": "/etc/ca.pem"},
            {"url": "redis://x", "ssl_certfile": "/c.pem", "ssl_keyfile": "/c.key"},
            {"url": "redis://x", "ssl": True},
        ]:
            with self.subTest(value=value):
                self.assertEqual(self.ids(value), ["django_prologue_sessions.E034"])

    def test_cache_alias_brings_its_own_connection_options(self) -> None:
        self.assertEqual(
            self.ids({"cache_alias": "sessions", "max_connections": 2}),
            ["django_prologue_sessions.E023"],
        )
