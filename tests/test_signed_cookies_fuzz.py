"""Property: no cookie value, however mangled, breaks a request or opens a session.

Each generated value is sent as the raw ``Cookie`` header (latin-1, as a WSGI
server hands it over) through Django's real ``SessionMiddleware``; a few
hundred also go through the test ``Client``. 2,000 examples in all.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

from django.conf import settings
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpResponse
from django.test import Client, RequestFactory, SimpleTestCase, override_settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from django_prologue_sessions.backends.signed_cookies import SessionStore
from tests import views

SESSION = {"user": 42, "cart": ["apple", "pear"], "note": "lorem ipsum " * 30}
COOKIE_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_:.!="


def examples(count: int) -> Any:
    return hypothesis_settings(
        max_examples=count,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


@functools.cache
def valid_cookies() -> tuple[str, ...]:
    """Real cookies of every shape the engine issues: the mutation seeds."""
    cookies = []
    for encrypted in (False, True):
        with override_settings(PROLOGUE_SESSIONS_COOKIE_ENCRYPTION=encrypted):
            for data in ({"user": 42}, SESSION):  # uncompressed, compressed
                store = SessionStore()
                store.update(data)
                store.save()
                assert store.session_key is not None
                cookies.append(store.session_key)
    return tuple(cookies)


def mutations(cookie: str) -> st.SearchStrategy[str]:
    """A valid cookie with one thing wrong with it."""
    n = len(cookie)
    index = st.integers(0, n - 1)
    bit_flip = st.builds(
        lambda i, bit: cookie[:i] + chr(ord(cookie[i]) ^ (1 << bit)) + cookie[i + 1 :],
        index,
        st.integers(0, 7),
    )
    truncation = st.one_of(
        st.builds(lambda i: cookie[:i], index),
        st.builds(lambda i: cookie[i + 1 :], index),
    )
    insertion = st.builds(
        lambda i, c: cookie[:i] + c + cookie[i:], index, st.sampled_from(COOKIE_CHARS)
    )
    deletion = st.builds(lambda i: cookie[:i] + cookie[i + 1 :], index)
    # Another base64 digit near the end, where encodings have spare bits.
    respelling = st.builds(
        lambda i, c: cookie[:i] + c + cookie[i + 1 :],
        st.integers(max(0, n - 3), n - 1),
        st.sampled_from(COOKIE_CHARS[:64]),
    )
    parts = cookie.split(":")
    segment_swap = (
        st.permutations(parts).map(":".join) if len(parts) > 1 else st.nothing()
    )
    # Segments of this cookie spliced with those of another valid one.
    splice = st.lists(
        st.tuples(st.sampled_from(valid_cookies()), st.integers(0, 2)),
        min_size=1,
        max_size=4,
    ).map(lambda picks: ":".join(c.split(":")[i % len(c.split(":"))] for c, i in picks))
    block_swap = st.builds(
        lambda i, j, size: _swap_blocks(cookie, i, j, size),
        index,
        index,
        st.integers(1, 16),
    )
    return st.one_of(
        bit_flip,
        truncation,
        insertion,
        deletion,
        respelling,
        segment_swap,
        splice,
        block_swap,
    ).filter(lambda value: value not in valid_cookies())


def _swap_blocks(text: str, i: int, j: int, size: int) -> str:
    i, j = sorted((i, j))
    size = min(size, j - i, len(text) - j)
    return (
        text[:i]
        + text[j : j + size]
        + text[i + size : j]
        + text[i : i + size]
        + text[j + size :]
    )


class CapturedRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class BadCookiePropertyTests(SimpleTestCase):
    def setUp(self) -> None:
        self.logged = CapturedRecords()
        logger = logging.getLogger("django.security.SuspiciousSession")
        logger.addHandler(self.logged)
        self.addCleanup(logger.removeHandler, self.logged)
        self.middleware = SessionMiddleware(views.session_get)

    def assert_empty_session(self, raw_value: str) -> None:
        """Send ``raw_value`` as the session cookie, exactly as a client could."""
        self.logged.records.clear()
        name = settings.SESSION_COOKIE_NAME
        request = RequestFactory().get(
            "/session/get/", HTTP_COOKIE=f"{name}={raw_value}"
        )
        response = self.middleware(request)
        self.assert_rejected(request.COOKIES.get(name), response)

    def assert_rejected(self, received: str | None, response: HttpResponse) -> None:
        self.assertEqual(response.status_code, 200)
        self.assertEqual(json.loads(response.content), {})
        if received is None:
            return
        # The bad cookie is deleted, not replaced nor kept.
        deleted = response.cookies[settings.SESSION_COOKIE_NAME]
        self.assertEqual((deleted.value, deleted["max-age"]), ("", 0))
        if len(received) >= 8:  # shorter is not even looked at as a key
            self.assertEqual(
                [r.getMessage() for r in self.logged.records],
                ["Session data corrupted"],
            )

    def test_valid_cookies_do_load(self) -> None:
        # The seeds are real: unmutated, each one opens its session.
        name = settings.SESSION_COOKIE_NAME
        for cookie in valid_cookies():
            request = RequestFactory().get("/", HTTP_COOKIE=f"{name}={cookie}")
            response = self.middleware(request)
            self.assertEqual(json.loads(response.content)["user"], 42)

    @examples(500)
    @given(st.binary(max_size=600))
    def test_random_bytes(self, raw: bytes) -> None:
        self.assert_empty_session(raw.decode("latin-1"))

    @examples(400)
    @given(
        st.lists(st.text(COOKIE_CHARS, max_size=120), min_size=1, max_size=5).map(
            ":".join
        )
    )
    def test_cookie_shaped_text(self, value: str) -> None:
        self.assert_empty_session(value)

    @examples(700)
    @given(st.data())
    def test_mutated_valid_cookie(self, data: st.DataObject) -> None:
        cookie = data.draw(st.sampled_from(valid_cookies()))
        self.assert_empty_session(data.draw(mutations(cookie)))

    @examples(200)
    @given(st.data())
    def test_mutated_valid_cookie_through_client(self, data: st.DataObject) -> None:
        cookie = data.draw(st.sampled_from(valid_cookies()))
        mutated = data.draw(mutations(cookie))
        self.logged.records.clear()
        client = Client()
        client.cookies[settings.SESSION_COOKIE_NAME] = mutated
        response = client.get("/session/get/")
        self.assert_rejected(
            response.wsgi_request.COOKIES.get(settings.SESSION_COOKIE_NAME), response
        )

    @examples(200)
    @given(
        st.one_of(
            st.deferred(lambda: st.sampled_from(valid_cookies())),
            st.text(COOKIE_CHARS, min_size=1, max_size=50),
        ),
        st.integers(4097, 200_000),
    )
    def test_huge(self, seed: str, size: int) -> None:
        self.assert_empty_session((seed * (size // len(seed) + 1))[:size])
