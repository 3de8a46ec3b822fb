"""Django's own engines pass the contract, which keeps the contract honest."""

from __future__ import annotations

import unittest

from django.contrib.sessions.backends import cache, signed_cookies
from django.test import SimpleTestCase

from tests.session_contract import SessionContractTests


class DjangoCacheEngineContractTests(SessionContractTests, SimpleTestCase):
    backend = cache.SessionStore


class DjangoSignedCookiesContractTests(SessionContractTests, SimpleTestCase):
    backend = signed_cookies.SessionStore
    server_side = False

    # The gap our signed-cookie engine closes: Django's ignores a per-session
    # expiry and only checks SESSION_COOKIE_AGE (Django ticket #19201).
    @unittest.expectedFailure
    def test_actual_expiry(self) -> None:
        super().test_actual_expiry()
