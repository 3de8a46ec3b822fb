from __future__ import annotations

from django.test import SimpleTestCase

from django_prologue_sessions.backends.signed_cookies import SessionStore
from tests.session_contract import SessionContractTests


class SignedCookieContractTests(SessionContractTests, SimpleTestCase):
    backend = SessionStore
    server_side = False
