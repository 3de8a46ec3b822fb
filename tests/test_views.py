"""The pages of a user's sessions (``views``, ``urls``, the templates),
through Django's test client and the real middleware, on the memory and Redis
engines: two users, each with a laptop and a phone."""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib import import_module
from typing import Any
from unittest import mock

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client, override_settings

from django_prologue_sessions.user_sessions import list_sessions
from django_prologue_sessions.views import session_id
from tests.test_activity import ENGINES, FIREFOX, recording_on

SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)
LIST = "/account/sessions/"
REVOKE = "/account/sessions/end/"
REVOKE_OTHERS = "/account/sessions/end-others/"


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, db: None) -> Iterator[str]:
    with recording_on(request, LOGIN_URL="/account/login/") as name:
        yield name


@pytest.fixture
def users(engine: str) -> dict[str, AbstractBaseUser]:
    model = get_user_model()
    return {name: model.objects.create_user(username=name) for name in ("ada", "bob")}


def log_in(
    username: str,
    remote_addr: str = "192.0.2.1",
    user_agent: str = FIREFOX,
    **kwargs: Any,
) -> Client:
    client = Client(REMOTE_ADDR=remote_addr, HTTP_USER_AGENT=user_agent, **kwargs)
    assert client.post("/account/login/", {"username": username}).status_code == 200
    return client


def rows(client: Client) -> list[str]:
    """The ``data-session`` ids of the rows of the list page, in order."""
    response = client.get(LIST)
    assert response.status_code == 200
    return re.findall(r'data-session="([0-9a-f]+)"', response.content.decode())


def sid(client: Client) -> str:
    return session_id(client.cookies["sessionid"].value)


def session_keys(user: AbstractBaseUser) -> set[str]:
    return {session.session_key for session in list_sessions(user)}


def test_the_list_needs_a_login(users: dict[str, AbstractBaseUser]) -> None:
    response = Client().get(LIST)
    assert response.status_code == 302
    assert response["Location"] == f"/account/login/?next={LIST}"


def test_each_user_sees_their_own_sessions_this_one_first(
    users: dict[str, AbstractBaseUser],
) -> None:
    laptop = log_in("ada")
    phone = log_in("ada", "198.51.100.7", SAFARI_IPHONE)
    bob = log_in("bob")
    assert rows(laptop) == [sid(laptop), sid(phone)]
    assert rows(phone) == [sid(phone), sid(laptop)]
    assert rows(bob) == [sid(bob)]


def test_the_page_shows_device_address_and_marks_this_session(
    users: dict[str, AbstractBaseUser],
) -> None:
    laptop = log_in("ada")
    log_in("ada", "198.51.100.7", SAFARI_IPHONE)
    page = laptop.get(LIST).content.decode()
    assert page.count("(this session)") == 1
    assert "Firefox on Linux" in page
    assert "Safari on iPhone" in page  # ua-parser is in the test extra
    assert "198.51.100.7" in page
    assert "192.0.2.1" in page
    # A session key is a credential: never in the page.
    for key in session_keys(users["ada"]):
        assert key not in page
    assert 'name="csrfmiddlewaretoken"' in page


def test_ending_another_session_signs_it_out_at_its_next_request(
    users: dict[str, AbstractBaseUser],
) -> None:
    laptop = log_in("ada")
    phone = log_in("ada", "198.51.100.7", SAFARI_IPHONE)
    response = laptop.post(REVOKE, {"session": sid(phone)})
    assert response.status_code == 302
    assert response["Location"] == LIST
    assert rows(laptop) == [sid(laptop)]
    assert phone.get(LIST).status_code == 302  # to the login page


def test_ending_one_session_lists_none(users: dict[str, AbstractBaseUser]) -> None:
    laptop = log_in("ada")
    phone = log_in("ada", "198.51.100.7", SAFARI_IPHONE)
    engine = import_module(settings.SESSION_ENGINE).SessionStore
    unlisted = AssertionError("the end view lists the user's sessions")
    with mock.patch.object(engine, "list_user_sessions", side_effect=unlisted):
        response = laptop.post(REVOKE, {"session": sid(phone)})
    assert response.status_code == 302
    assert session_keys(users["ada"]) == {laptop.cookies["sessionid"].value}


def test_ending_this_session_is_a_logout(users: dict[str, AbstractBaseUser]) -> None:
    laptop = log_in("ada")
    phone = log_in("ada", "198.51.100.7", SAFARI_IPHONE)
    old = sid(laptop)
    response = laptop.post(REVOKE, {"session": old})
    assert response.status_code == 302
    assert laptop.get(LIST).status_code == 302
    assert rows(phone) == [sid(phone)]


def test_ending_all_others_keeps_this_one(users: dict[str, AbstractBaseUser]) -> None:
    laptop = log_in("ada")
    phone = log_in("ada", "198.51.100.7", SAFARI_IPHONE)
    tablet = log_in("ada", "203.0.113.5", "Tablet")
    bob = log_in("bob")
    assert laptop.post(REVOKE_OTHERS).status_code == 302
    assert rows(laptop) == [sid(laptop)]
    assert phone.get(LIST).status_code == 302
    assert tablet.get(LIST).status_code == 302
    assert rows(bob) == [sid(bob)]


@pytest.mark.parametrize(
    "posted",
    [
        {},
        {"session": ""},
        {"session": "x" * 10_000},
        {"session": "not hex at all, but 32 chars...."},
    ],
)
def test_garbage_ends_nothing(
    users: dict[str, AbstractBaseUser], posted: dict[str, str]
) -> None:
    laptop = log_in("ada")
    phone = log_in("ada", "198.51.100.7", SAFARI_IPHONE)
    response = laptop.post(REVOKE, posted)
    assert response.status_code == 302
    assert rows(laptop) == [sid(laptop), sid(phone)]


def test_another_users_session_is_never_ended(
    users: dict[str, AbstractBaseUser],
) -> None:
    ada = log_in("ada")
    bob = log_in("bob")
    bob_key = bob.cookies["sessionid"].value
    # By its id, as bob's page names it, and by its raw key.
    for posted in (sid(bob), bob_key):
        response = ada.post(REVOKE, {"session": posted})
        assert response.status_code == 302
        assert rows(bob) == [sid(bob)]
    assert session_keys(users["bob"]) == {bob_key}


def test_end_views_take_post_only(users: dict[str, AbstractBaseUser]) -> None:
    laptop = log_in("ada")
    assert laptop.get(REVOKE).status_code == 405
    assert laptop.get(REVOKE_OTHERS).status_code == 405
    assert rows(laptop) == [sid(laptop)]


def test_end_views_need_a_login(users: dict[str, AbstractBaseUser]) -> None:
    laptop = log_in("ada")
    response = Client().post(REVOKE_OTHERS)
    assert response.status_code == 302
    assert response["Location"].startswith("/account/login/")
    assert rows(laptop) == [sid(laptop)]


def test_a_post_without_the_csrf_token_is_refused(
    users: dict[str, AbstractBaseUser],
) -> None:
    laptop = log_in("ada", enforce_csrf_checks=True)
    phone = log_in("ada", "198.51.100.7", SAFARI_IPHONE)
    assert laptop.post(REVOKE, {"session": sid(phone)}).status_code == 403
    assert laptop.post(REVOKE_OTHERS).status_code == 403
    assert rows(laptop) == [sid(laptop), sid(phone)]


def test_sites_override_the_templates(
    users: dict[str, AbstractBaseUser], tmp_path: Any
) -> None:
    folder = tmp_path / "django_prologue_sessions"
    folder.mkdir()
    (folder / "base.html").write_text("<site>{% block content %}{% endblock %}</site>")
    laptop = log_in("ada")
    templates = [{**settings.TEMPLATES[0], "DIRS": [tmp_path]}]
    with override_settings(TEMPLATES=templates):
        page = laptop.get(LIST).content.decode()
    assert page.startswith("<site>")
    assert page.rstrip().endswith("</site>")
    assert sid(laptop) in page
