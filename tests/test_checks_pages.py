"""System check W056: the sessions pages routed with an engine that cannot
list a user's sessions (``tests/urls.py`` routes them under
``account/sessions/``)."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.test import override_settings
from django.urls import path

from django_prologue_sessions.checks import check_sessions_pages
from django_prologue_sessions.views import SessionListView


class MyDevices(SessionListView):
    """A site's own subclass, routed without the app's URLconf."""


# A URLconf of the site's own: this module (see ``urlpatterns``).
urlpatterns = [path("me/devices/", MyDevices.as_view())]


def w056() -> list[str]:
    return [
        message.msg
        for message in run_checks()
        if message.id == "django_prologue_sessions.W056"
    ]


@pytest.mark.parametrize(
    "engine",
    [
        "django_prologue_sessions.backends.signed_cookies",
        "django.contrib.sessions.backends.signed_cookies",
        "django.contrib.sessions.backends.db",
    ],
)
def test_w056_pages_routed_with_an_engine_that_cannot_list(engine: str) -> None:
    with override_settings(SESSION_ENGINE=engine):
        (message,) = w056()
    assert "(/account/sessions/, /account/sessions/end/, " in message
    assert repr(engine) in message


def test_w056_a_subclass_routed_by_the_site() -> None:
    with override_settings(ROOT_URLCONF=__name__):
        (message,) = w056()
    assert "(/me/devices/)" in message


@pytest.mark.redis
def test_w056_redis_without_its_user_index(redis_url: str) -> None:
    with override_settings(
        SESSION_ENGINE="django_prologue_sessions.backends.redis",
        SESSION_REDIS={"url": redis_url, "user_index": False},
    ):
        assert len(w056()) == 1
    with override_settings(
        SESSION_ENGINE="django_prologue_sessions.backends.redis",
        SESSION_REDIS={"url": redis_url},
    ):
        assert w056() == []


def test_w056_not_with_an_engine_that_lists() -> None:
    with override_settings(SESSION_ENGINE="django_prologue_sessions.backends.memory"):
        assert w056() == []


def test_w056_not_without_the_pages() -> None:
    with override_settings(ROOT_URLCONF="tests.flash_views"):
        assert w056() == []


def test_w056_a_broken_urlconf_is_left_to_django() -> None:
    # Django's own URL check reports it (it raises the import error).
    with override_settings(ROOT_URLCONF="tests.no_such_urlconf"):
        assert check_sessions_pages() == []
