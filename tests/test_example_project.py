"""The example project's pages through Django's test client, for each engine.

Runs in every test run, browser or not: the views, templates and settings of
``example_project/`` with the real middleware and the real session engines
(a real Redis server for the Redis engine).
"""

from __future__ import annotations

import html
import importlib
import json
import random
import re
import sys
import urllib.request
from collections.abc import Iterable, Iterator
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
)
from django.contrib.sessions.backends.base import SessionBase
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from django_prologue_sessions.backends import memory
from tests.e2e.server import ExampleServer

EXAMPLE_DIR = Path(__file__).resolve().parents[1] / "example_project"
if str(EXAMPLE_DIR) not in sys.path:
    sys.path.insert(0, str(EXAMPLE_DIR))

from prologue_example import settings as example_settings  # noqa: E402
from prologue_example.engines import engine_name, engine_path  # noqa: E402

FLASH = re.compile(
    r'<li class="flash flash-\w+" data-level="(\w+)">'
    r'<span class="tag">\w+</span> <span class="text">(.*?)</span></li>'
)
TWO_WEEKS = 14 * 24 * 60 * 60


@pytest.fixture(
    params=[
        "signed_cookies",
        "memory",
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def engine(request: pytest.FixtureRequest, settings: Any, db: None) -> str:
    """Run the test under the example's settings with each engine (and the
    test database for the users that signing in makes)."""
    name: str = request.param
    for setting in (
        "ROOT_URLCONF",
        "TEMPLATES",
        "MIDDLEWARE",
        "STATIC_URL",
        "MESSAGE_STORAGE",
        "MESSAGE_LEVEL",
        "SESSION_COOKIE_AGE",
    ):
        setattr(settings, setting, getattr(example_settings, setting))
    settings.SESSION_ENGINE = engine_path(name)
    if name == "redis":
        settings.SESSION_REDIS = {"url": request.getfixturevalue("redis_url")}
    return name


def flashes(response: Any) -> list[tuple[str, str]]:
    """The flash messages a page shows, as ``(level, text)``, in order."""
    return [
        (level, html.unescape(text))
        for level, text in FLASH.findall(response.content.decode())
    ]


def session_key(client: Client) -> str:
    return client.cookies["sessionid"].value


def store(key: str | None = None) -> SessionBase:
    from django.conf import settings

    store: SessionBase = import_module(settings.SESSION_ENGINE).SessionStore(key)
    return store


def server_side(engine: str) -> bool:
    return engine != "signed_cookies"


def sign_in(client: Client, name: str) -> None:
    """Sign in as a browser does: follow the redirect, which shows the flash."""
    response = client.post("/sign-in/", {"name": name}, follow=True)
    assert flashes(response) == [("success", "Welcome! You are signed in.")]


def own(contents: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The session page's rows but those of the login (``django.contrib.auth``'s
    keys and the activity record)."""
    return [
        (key, value)
        for key, value in contents
        if not key.startswith(("_auth_", "_prologue_"))
    ]


def user_id(name: str) -> str:
    """The id ``login()`` stores for the example's user of that name."""
    return str(get_user_model().objects.get(username=name).pk)


def varied_text(length: int, seed: int = 0) -> str:
    """Non-ASCII text that compresses badly: the worst case for a cookie."""
    chance = random.Random(seed)
    return "".join(chr(chance.randrange(0x4E00, 0x9FFF)) for _ in range(length))


# Home, sign in and out --------------------------------------------------------


def test_home_counts_the_visits_of_this_session(engine: str, client: Client) -> None:
    assert [client.get("/").context["visits"] for _ in range(3)] == [1, 2, 3]
    assert Client().get("/").context["visits"] == 1


def test_sign_in_flashes_success_once(engine: str, client: Client) -> None:
    response = client.post("/sign-in/", {"name": "  Ada "}, follow=True)
    assert response.redirect_chain == [("/", 302)]
    assert flashes(response) == [("success", "Welcome! You are signed in.")]
    assert response.context["name"] == "Ada"
    assert "Signed in as <strong>Ada</strong>" in response.content.decode()

    again = client.get("/")
    assert flashes(again) == []
    assert again.context["name"] == "Ada"


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("", "Please enter a name to sign in."),
        ("   ", "Please enter a name to sign in."),
        ("x" * 21, "A name has at most 20 characters (this one has 21)."),
    ],
    ids=["empty", "blank", "too-long"],
)
def test_sign_in_without_a_valid_name_flashes_an_error(
    engine: str, client: Client, name: str, error: str
) -> None:
    response = client.post("/sign-in/", {"name": name}, follow=True)
    assert response.redirect_chain == [("/", 302)]
    assert flashes(response) == [("error", error)]
    assert response.context["name"] == ""
    assert flashes(client.get("/")) == []


def test_sign_in_gives_a_new_session_key(engine: str, client: Client) -> None:
    client.get("/")
    before = session_key(client)
    sign_in(client, "Ada")
    after = session_key(client)
    assert after != before
    if server_side(engine):
        assert not store().exists(before)
        assert store().exists(after)
    assert client.get("/").context["visits"] == 3


def test_sign_out_deletes_the_session(engine: str, client: Client) -> None:
    sign_in(client, "Ada")
    client.get("/")
    signed_in_key = session_key(client)

    response = client.post("/sign-out/", follow=True)
    assert response.redirect_chain == [("/", 302)]
    assert flashes(response) == [("info", "Goodbye! Your session was deleted.")]
    assert response.context["name"] == ""
    assert response.context["visits"] == 1
    assert session_key(client) != signed_in_key

    replay = Client()
    replay.cookies["sessionid"] = signed_in_key
    contents = dict(replay.get("/session/").context["contents"])
    if server_side(engine):
        assert not store().exists(signed_in_key)
        assert contents == {}
    else:
        # A signed cookie cannot be revoked: a copy stays valid until expiry.
        assert own(contents.items()) == [("name", '"Ada"'), ("visits", "2")]
        assert contents[SESSION_KEY] == json.dumps(user_id("Ada"))


def test_sign_out_when_not_signed_in_warns(engine: str, client: Client) -> None:
    response = client.post("/sign-out/", follow=True)
    assert flashes(response) == [("warning", "You were not signed in.")]


@pytest.mark.parametrize(
    "path", ["/sign-in/", "/sign-out/", "/session/expiry/", "/levels/flash/"]
)
def test_forms_accept_only_post(engine: str, client: Client, path: str) -> None:
    assert client.get(path).status_code == 405


def test_pages_accept_only_get(engine: str, client: Client) -> None:
    for path in ("/", "/session/", "/levels/"):
        assert client.post(path).status_code == 405
    assert client.put("/posts/").status_code == 405


# Posts: Post/Redirect/Get -------------------------------------------------


def test_posting_needs_a_name(engine: str, client: Client) -> None:
    response = client.post("/posts/", {"title": "Hi", "body": "Text"}, follow=True)
    assert response.redirect_chain == [("/", 302)]
    assert flashes(response) == [("warning", "Sign in first to write a post.")]
    assert client.get("/posts/").context["posts"] == []


def test_an_invalid_post_flashes_errors_and_keeps_the_draft(
    engine: str, client: Client
) -> None:
    sign_in(client, "Ada")
    response = client.post("/posts/", {"title": "", "body": ""}, follow=True)
    assert response.redirect_chain == [("/posts/", 302)]
    assert flashes(response) == [
        ("error", "A post needs a title."),
        ("error", "A post needs some text."),
    ]

    response = client.post("/posts/", {"title": "Draft", "body": ""}, follow=True)
    assert flashes(response) == [("error", "A post needs some text.")]
    assert response.context["draft"] == {"title": "Draft", "body": ""}
    assert 'value="Draft"' in response.content.decode()
    # The draft is given back once.
    assert client.get("/posts/").context["draft"] == {}
    assert client.get("/posts/").context["posts"] == []


def test_a_valid_post_is_published_and_reloading_does_not_repeat_it(
    engine: str, client: Client
) -> None:
    sign_in(client, "Ada")
    response = client.post(
        "/posts/", {"title": "<Hello>", "body": "First\npost"}, follow=True
    )
    assert response.redirect_chain == [("/posts/", 302)]
    assert flashes(response) == [("success", "Your post was published.")]
    page = response.content.decode()
    assert "<h3>&lt;Hello&gt;</h3>" in page
    assert "<p>First<br>post</p>" in page

    reloaded = client.get("/posts/")
    assert flashes(reloaded) == []
    assert [post["title"] for post in reloaded.context["posts"]] == ["<Hello>"]


def test_the_newest_five_posts_are_kept(engine: str, client: Client) -> None:
    sign_in(client, "Ada")
    for number in range(1, 8):
        client.post("/posts/", {"title": f"Post {number}", "body": "Text"})
    titles = [post["title"] for post in client.get("/posts/").context["posts"]]
    assert titles == ["Post 7", "Post 6", "Post 5", "Post 4", "Post 3"]


@pytest.mark.parametrize(
    ("title", "body", "error"),
    [
        ("x" * 41, "ok", "A title has at most 40 characters (this one has 41)."),
        ("ok", "x" * 121, "A post has at most 120 characters (this one has 121)."),
    ],
    ids=["title", "body"],
)
def test_too_long_posts_are_refused(
    engine: str, client: Client, title: str, body: str, error: str
) -> None:
    sign_in(client, "Ada")
    response = client.post("/posts/", {"title": title, "body": body}, follow=True)
    assert flashes(response) == [("error", error)]
    assert response.context["posts"] == []


def test_the_largest_session_a_client_can_make_still_fits_in_a_cookie(
    engine: str, client: Client
) -> None:
    """The worst a client can send never makes the session too large.

    With the signed-cookie engine the session must fit in a 4 kB cookie; the
    example bounds all it keeps, so this cannot fail with
    ``SessionCookieTooLarge`` (which the test client would raise). The client
    never follows a redirect, so that no flash message is ever read.
    """
    name = varied_text(20)
    sign_in(client, name)
    for number in range(6):
        response = client.post(
            "/posts/",
            {"title": varied_text(40, number), "body": varied_text(120, number)},
        )
        assert response.status_code == 302
    # Invalid: the body is one character too long; the draft fits its budget.
    draft = {"title": varied_text(40, 7), "body": "x" * 121}
    assert client.post("/posts/", draft).status_code == 302
    # Unread messages up to the bound, and one more, of the longest text.
    for _ in range(10):
        assert client.post("/levels/flash/", {"level": ["debug"]}).status_code == 302
    assert client.post("/sign-in/", {"name": ""}).status_code == 302
    # About the largest session a client can make; it would fit in a cookie
    # even if it did not compress at all: base64 of the serialized session,
    # plus the signature and the cookie's attributes (under 200 bytes).
    serialized = json.dumps(store(session_key(client)).load(), separators=(",", ":"))
    assert len(serialized) > 2300
    assert len(serialized) * 4 / 3 + 200 < 4096

    page = client.get("/levels/")
    assert page.status_code == 200
    assert page.context["name"] == name
    assert len(page.context["waiting"]) == 10
    page = client.get("/posts/")
    assert page.context["draft"] == {"title": varied_text(40, 7), "body": "x" * 120}
    assert page.context["posts"][0]["title"] == varied_text(40, 5)
    assert len(page.context["posts"]) == 1


# Session page -------------------------------------------------------------


def test_the_session_page_shows_engine_contents_and_expiry(
    engine: str, client: Client
) -> None:
    sign_in(client, "Ada")
    response = client.get("/session/")
    context = response.context
    assert context["engine"] == engine
    assert context["engine_path"] == f"django_prologue_sessions.backends.{engine}"
    assert own(context["contents"]) == [("name", '"Ada"'), ("visits", "1")]
    assert [key for key, _ in context["contents"] if key.startswith("_auth_")] == [
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
    ]
    assert context["expiry_age"] == TWO_WEEKS
    assert context["at_browser_close"] is False
    page = response.content.decode()
    assert f'<code id="engine">{engine}</code>' in page
    assert "in 1209600 seconds, at " in page


def test_the_session_page_shows_waiting_flash_messages(
    engine: str, client: Client
) -> None:
    client.post("/levels/flash/", {"level": ["error"]})
    response = client.get("/session/")
    contents = dict(response.context["contents"])
    assert "An error message" in contents["_messages"]
    assert flashes(response) == [
        ("error", "An error message: something needs your attention.")
    ]
    assert "_messages" not in dict(client.get("/session/").context["contents"])


def test_a_new_visitor_has_an_empty_session(engine: str, client: Client) -> None:
    response = client.get("/session/")
    assert response.context["contents"] == []
    assert response.context["session_key"] == ""
    assert "The session is empty." in response.content.decode()
    assert "sessionid" not in response.cookies


@pytest.mark.parametrize(
    ("choice", "message", "age", "at_browser_close"),
    [
        ("minute", "Your session now expires after 60 seconds.", 60, False),
        ("hour", "Your session now expires after 3600 seconds.", 3600, False),
        ("browser", "Your session now ends when you close the browser.", None, True),
        ("default", "Your session now expires after 1209600 seconds.", None, False),
    ],
)
def test_the_expiry_can_be_changed(
    engine: str,
    client: Client,
    choice: str,
    message: str,
    age: int | None,
    at_browser_close: bool,
) -> None:
    sign_in(client, "Ada")
    response = client.post("/session/expiry/", {"expiry": choice}, follow=True)
    assert response.redirect_chain == [("/session/", 302)]
    assert flashes(response) == [("success", message)]
    assert response.context["at_browser_close"] is at_browser_close
    assert response.context["expiry_age"] == (age or TWO_WEEKS)
    cookie = client.cookies["sessionid"]
    assert cookie["max-age"] == ("" if at_browser_close else (age or TWO_WEEKS))


def test_an_unknown_expiry_choice_is_an_error(engine: str, client: Client) -> None:
    sign_in(client, "Ada")
    response = client.post("/session/expiry/", {"expiry": "forever"}, follow=True)
    assert flashes(response) == [("error", "Pick one of the expiry choices.")]
    assert response.context["expiry_age"] == TWO_WEEKS


# Levels page --------------------------------------------------------------


def levels_page(client: Client, show: str = "") -> Any:
    response = client.get("/levels/", {"show": show} if show else {})
    assert response.status_code == 200
    return response


def waiting(response: Any) -> list[str]:
    return [message.level_tag for message in response.context["waiting"]]


def test_levels_are_read_one_level_at_a_time(engine: str, client: Client) -> None:
    response = client.post("/levels/flash/", {"level": ["debug", "info", "error"]})
    assert response.status_code == 302
    assert response["Location"] == "/levels/"

    page = levels_page(client)
    assert waiting(page) == ["debug", "info", "error"]
    assert page.context["shown"] == []
    assert dict(page.context["counts"]) == {
        "debug": 1,
        "info": 1,
        "success": 0,
        "warning": 0,
        "error": 1,
    }

    page = levels_page(client, "error")
    assert flashes(page) == [
        ("error", "An error message: something needs your attention.")
    ]
    assert waiting(page) == ["debug", "info"]
    assert waiting(levels_page(client)) == ["debug", "info"]

    page = levels_page(client, "error")
    assert page.context["shown"] == []
    assert "No error messages were waiting." in page.content.decode()

    page = levels_page(client, "all")
    assert [level for level, _ in flashes(page)] == ["debug", "info"]
    assert waiting(page) == []


def test_an_unknown_level_reads_nothing(engine: str, client: Client) -> None:
    client.post("/levels/flash/", {"level": ["warning", "nonsense"]})
    page = levels_page(client, "nonsense")
    assert page.context["show"] == ""
    assert page.context["shown"] == []
    assert waiting(page) == ["warning"]


def test_other_pages_show_all_waiting_messages(engine: str, client: Client) -> None:
    client.post("/levels/flash/", {"level": ["success", "debug"]})
    client.post("/levels/flash/", {"level": ["info"]})
    assert [level for level, _ in flashes(client.get("/"))] == [
        "debug",
        "success",
        "info",
    ]
    assert waiting(levels_page(client)) == []


def test_the_number_of_waiting_messages_is_bounded(engine: str, client: Client) -> None:
    every_level = {"level": ["debug", "info", "success", "warning", "error"]}
    for _ in range(2):
        client.post("/levels/flash/", every_level)
    response = client.post("/levels/flash/", every_level)
    assert response["Location"] == "/levels/?full=1"
    page = client.get(response["Location"])
    assert len(page.context["waiting"]) == 10
    assert "Plenty of messages are waiting already" in page.content.decode()


# Settings -----------------------------------------------------------------


@pytest.fixture
def reload_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Reload the example's settings module under a changed environment."""
    for variable in (
        "PROLOGUE_EXAMPLE_ENGINE",
        "PROLOGUE_EXAMPLE_REDIS_URL",
        "PROLOGUE_EXAMPLE_DATABASE",
    ):
        monkeypatch.delenv(variable, raising=False)
    yield lambda: importlib.reload(example_settings)
    monkeypatch.undo()
    importlib.reload(example_settings)


def test_the_default_engine_needs_no_server(reload_settings: Any) -> None:
    settings = reload_settings()
    assert settings.SESSION_ENGINE == "django_prologue_sessions.backends.signed_cookies"
    # A SQLite file for the users, and no sessions page without a list of them.
    assert settings.DATABASES["default"] == {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(EXAMPLE_DIR / "db.sqlite3"),
    }
    assert settings.SESSIONS_PAGE is False
    assert settings.PROLOGUE_SESSIONS_ACTIVITY is False


def test_the_server_side_engines_record_activity(
    reload_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROLOGUE_EXAMPLE_ENGINE", "memory")
    monkeypatch.setenv("PROLOGUE_EXAMPLE_DATABASE", "/tmp/users.sqlite3")
    settings = reload_settings()
    assert settings.SESSIONS_PAGE is True
    assert settings.PROLOGUE_SESSIONS_ACTIVITY is True
    assert settings.DATABASES["default"]["NAME"] == "/tmp/users.sqlite3"


@pytest.mark.parametrize(
    ("variable", "engine"),
    [
        ("memory", "memory"),
        ("Signed-Cookies", "signed_cookies"),
        (" redis ", "redis"),
    ],
)
def test_one_environment_variable_chooses_the_engine(
    reload_settings: Any, monkeypatch: pytest.MonkeyPatch, variable: str, engine: str
) -> None:
    monkeypatch.setenv("PROLOGUE_EXAMPLE_ENGINE", variable)
    settings = reload_settings()
    assert engine_path(engine) == settings.SESSION_ENGINE
    assert engine_name(settings.SESSION_ENGINE) == engine


def test_the_redis_url_comes_from_the_environment(
    reload_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert reload_settings().SESSION_REDIS == {"url": "redis://127.0.0.1:6379/0"}
    monkeypatch.setenv("PROLOGUE_EXAMPLE_REDIS_URL", "redis://example:6380/2")
    assert reload_settings().SESSION_REDIS == {"url": "redis://example:6380/2"}


def test_an_unknown_engine_is_a_clear_error(
    reload_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROLOGUE_EXAMPLE_ENGINE", "database")
    with pytest.raises(ImproperlyConfigured) as raised:
        reload_settings()
    assert str(raised.value) == (
        "PROLOGUE_EXAMPLE_ENGINE='database' is not an engine of the example; "
        "use one of: signed_cookies, memory, redis."
    )


def test_an_engine_that_is_not_ours_is_shown_by_its_path() -> None:
    path = "django.contrib.sessions.backends.cache"
    assert engine_name(path) == path


def test_runserver_serves_the_site_after_migrate() -> None:
    """The README's commands (``migrate``, then ``runserver``), on the default
    engine: pages, stylesheet, no complaint about unapplied migrations."""
    server = ExampleServer("signed_cookies")
    try:
        server.wait_until_serving()
        with urllib.request.urlopen(f"{server.url}/", timeout=10) as response:
            page = response.read().decode()
            cookies = response.headers.get_all("Set-Cookie")
        with urllib.request.urlopen(
            f"{server.url}/static/example/site.css", timeout=10
        ) as response:
            stylesheet = response.read().decode()
        output = server.output()
    finally:
        server.stop()
    assert 'You have visited this page <strong id="visits">1</strong>' in page
    assert any(cookie.startswith("sessionid=") for cookie in cookies)
    assert ".flash-error" in stylesheet
    # The page of a user's sessions is routed, which this engine cannot
    # list: the example silences the check that warns of it.
    assert "System check identified no issues (1 silenced)." in output
    assert "migration" not in output


# Where you're signed in -----------------------------------------------------


def test_the_sessions_page_lists_both_browsers_of_one_name(
    engine: str, settings: Any, request: pytest.FixtureRequest
) -> None:
    # Each test's users start again at id 1: no sessions left of earlier ones.
    if engine == "redis":
        request.getfixturevalue("redis_client")  # flushed
    elif engine == "memory":
        memory.SessionStore.clear_all()
    settings.SESSIONS_PAGE = server_side(engine)
    settings.PROLOGUE_SESSIONS_ACTIVITY = server_side(engine)
    settings.LOGIN_URL = example_settings.LOGIN_URL
    laptop, phone = Client(), Client(HTTP_USER_AGENT="Phone")
    sign_in(laptop, "Ada")
    sign_in(phone, "Ada")
    home = laptop.get("/").content.decode()
    if not server_side(engine):
        # The signed-cookie engine keeps no list of a user's sessions: no
        # link, and the page says why (never a 500).
        assert 'id="sessions-link"' not in home
        page = laptop.get("/account/sessions/")
        assert page.status_code == 200
        assert "This site cannot list where you're signed in" in page.content.decode()
        return
    assert 'id="sessions-link"' in home
    page = laptop.get("/account/sessions/")
    assert page.status_code == 200
    text = page.content.decode()
    # In the site's layout, through its override of the app's base template.
    assert "Signed in as <strong>Ada</strong>" in text
    assert text.count('<li class="prologue-session') == 2
    assert text.count('<span class="this-device">This device</span>') == 1
    assert "Phone" in text
    # Signed out: to the home page, where one signs in.
    response = Client().get("/account/sessions/")
    assert response.status_code == 302
    assert response["Location"] == "/?next=/account/sessions/"
