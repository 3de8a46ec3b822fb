"""The pages of a user's sessions (``views``, ``urls``, the templates),
through Django's test client and the real middleware, on the memory and Redis
engines: two users, each with a laptop and a phone."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

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
    assert page.count('<span class="this-device">This device</span>') == 1
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


CONFIRMATION = '<p class="confirmation" role="status">{}</p>'


def all_messages(client: Client) -> list[list[object]]:
    """Every message still stored, taken by a page that shows them all (as
    ``/admin/`` does)."""
    response = client.get("/flash/get/")
    assert response.status_code == 200
    messages: list[list[object]] = response.json()
    return messages


def test_the_list_confirms_an_ended_session_once(
    users: dict[str, AbstractBaseUser],
) -> None:
    laptop = log_in("ada")
    phone = log_in("ada", "198.51.100.7", SAFARI_IPHONE)
    page = laptop.post(REVOKE, {"session": sid(phone)}, follow=True)
    assert page.redirect_chain == [(LIST, 302)]
    text = page.content.decode()
    assert text.count(CONFIRMATION.format("The session was ended.")) == 1
    # Shown once: not on the next view of the list, nor left stored for
    # another page.
    assert "The session was ended." not in laptop.get(LIST).content.decode()
    assert all_messages(laptop) == []


def test_the_list_takes_only_its_own_messages(
    users: dict[str, AbstractBaseUser],
) -> None:
    laptop = log_in("ada")
    phone = log_in("ada", "198.51.100.7", SAFARI_IPHONE)
    laptop.post("/flash/add/", {"level": "warning", "message": "Disk nearly full."})
    page = laptop.post(REVOKE, {"session": sid(phone)}, follow=True)
    text = page.content.decode()
    assert CONFIRMATION.format("The session was ended.") in text
    assert "Disk nearly full." not in text
    # The site's own message waits for a page that shows messages.
    assert all_messages(laptop) == [[30, "Disk nearly full.", "warning"]]


@pytest.mark.parametrize(
    ("others", "said"),
    [
        (0, "No other session was signed in."),
        (1, "Signed out of 1 other session."),
        (2, "Signed out of 2 other sessions."),
    ],
)
def test_the_list_confirms_ending_the_others(
    users: dict[str, AbstractBaseUser], others: int, said: str
) -> None:
    laptop = log_in("ada")
    for n in range(others):
        log_in("ada", f"198.51.100.{n + 1}", SAFARI_IPHONE)
    page = laptop.post(REVOKE_OTHERS, follow=True)
    assert page.redirect_chain == [(LIST, 302)]
    assert CONFIRMATION.format(said) in page.content.decode()
    assert all_messages(laptop) == []


def test_the_buttons_say_what_they_end(users: dict[str, AbstractBaseUser]) -> None:
    laptop = log_in("ada")
    phone = log_in("ada", "198.51.100.7", SAFARI_IPHONE)
    log_in("ada", "203.0.113.5", "")
    page = laptop.get(LIST).content.decode()
    buttons = re.findall(r'<button type="submit" [^>]*id="([^"]+)">([^<]+)<', page)
    assert buttons[0] == (f"end-{sid(laptop)}", "Sign out of this device")
    assert (f"end-{sid(phone)}", "Sign out of Safari on iPhone") in buttons
    assert buttons[-1] == ("end-other-sessions", "Sign out of all 2 other sessions")
    assert "Sign out of the unknown device" in page


def test_the_list_works_without_the_messages_middleware(
    users: dict[str, AbstractBaseUser],
) -> None:
    middleware = [m for m in settings.MIDDLEWARE if "messages" not in m]
    with override_settings(MIDDLEWARE=middleware):
        # A client loads the middleware at its first request.
        laptop = log_in("ada")
        phone = log_in("ada", "198.51.100.7", SAFARI_IPHONE)
        page = laptop.post(REVOKE, {"session": sid(phone)}, follow=True)
        assert page.status_code == 200
        assert 'class="confirmation"' not in page.content.decode()
        assert rows(laptop) == [sid(laptop)]


@pytest.mark.parametrize(
    "engine_settings",
    [
        {"SESSION_ENGINE": "django_prologue_sessions.backends.signed_cookies"},
        {"SESSION_ENGINE": "django.contrib.sessions.backends.signed_cookies"},
        {"SESSION_ENGINE": "django.contrib.sessions.backends.cache"},
    ],
)
@pytest.mark.parametrize("debug", [False, True])
def test_an_engine_that_cannot_list_gets_a_page_that_says_so(
    db: None, engine_settings: dict[str, str], debug: bool
) -> None:
    get_user_model().objects.create_user(username="ada")
    with override_settings(
        **engine_settings,
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        LOGIN_URL="/account/login/",
        DEBUG=debug,
    ):
        laptop = log_in("ada")
        page = laptop.get(LIST)
        assert page.status_code == 200
        text = page.content.decode()
        assert "This site cannot list where you're signed in" in text
        # What to change is for the developer, under DEBUG only.
        assert ("keeps no index of sessions by user" in text) is debug
        # The end views end nothing and say nothing: back to the list.
        for url in (REVOKE, REVOKE_OTHERS):
            response = laptop.post(url, {"session": "0" * 32})
            assert (response.status_code, response["Location"]) == (302, LIST)
        assert laptop.get(LIST).status_code == 200  # still signed in


@pytest.mark.redis
def test_redis_without_its_user_index_gets_the_page_too(
    db: None, redis_url: str
) -> None:
    get_user_model().objects.create_user(username="ada")
    with override_settings(
        SESSION_ENGINE="django_prologue_sessions.backends.redis",
        SESSION_REDIS={"url": redis_url, "user_index": False},
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
    ):
        page = log_in("ada").get(LIST)
    assert page.status_code == 200
    assert "This site cannot list where you're signed in" in page.content.decode()


def test_the_page_brings_its_own_look_which_sites_can_drop(
    users: dict[str, AbstractBaseUser], tmp_path: Any
) -> None:
    laptop = log_in("ada")
    page = laptop.get(LIST).content.decode()
    assert page.count("<style>") == 2  # the base's page colours, the section's
    assert "http" not in page.split("<style>", 2)[2].split("</style>")[0]
    # Overridden, extending itself (as docs/user_sessions.md shows), the
    # list drops the section's stylesheet and keeps the rest.
    folder = tmp_path / "django_prologue_sessions"
    folder.mkdir()
    (folder / "session_list.html").write_text(
        '{% extends "django_prologue_sessions/session_list.html" %}'
        "{% block sessions_style %}{% endblock %}"
    )
    templates = [{**settings.TEMPLATES[0], "DIRS": [tmp_path]}]
    with override_settings(TEMPLATES=templates):
        page = laptop.get(LIST).content.decode()
    assert ".prologue-sessions {" not in page
    assert sid(laptop) in page
