"""``manage.py usersessions``: the exact output, and its errors."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from io import StringIO
from unittest import mock

import pytest
from django.contrib.auth import SESSION_KEY
from django.core.management import CommandError, call_command
from django.test import override_settings

from django_prologue_sessions.activity import ACTIVITY_KEY
from django_prologue_sessions.backends import memory
from django_prologue_sessions.backends.memory import SessionStore
from django_prologue_sessions.management.commands.usersessions import Command
from django_prologue_sessions.user_sessions import session_id

START = datetime(2026, 1, 1, 9, 30, tzinfo=UTC)
LAPTOP = "laptop0000aaaaaaaaaaaaaaaaaaaaaa"
PHONE = "phone00000bbbbbbbbbbbbbbbbbbbbbb"
TABLET = "phone00000cccccccccccccccccccccc"  # starts like PHONE
OTHER_USERS = "someoneelse000000000000000000000"
# Their ids, as list shows them and --session and --keep take them.
LAPTOP_ID = "laptop00LSe07MW7DrKChcT-GD2gqZy"
PHONE_ID = "phone000seI70fL-e_sPuWP8NkkHEC_"
TABLET_ID = "phone0001Z3z6yIf0OdQfQkSVKpFsht"
OTHER_USERS_ID = "someoneeUq4pLZWCmgpNFMhjbrgXF4c"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)


class Clocks:
    def __init__(self) -> None:
        self.monotonic = 50_000.0
        self.wall = START.timestamp()

    def advance(self, seconds: float) -> None:
        self.monotonic += seconds
        self.wall += seconds

    def monotonic_clock(self) -> float:
        return self.monotonic

    def wall_clock(self) -> float:
        return self.wall


def save_new(key: str, user_id: str, expiry: int | None = None) -> None:
    session = SessionStore()
    session[SESSION_KEY] = user_id
    if expiry is not None:
        session.set_expiry(expiry)
    with mock.patch.object(SessionStore, "_new_key", return_value=key):
        session.save()
    assert session.session_key == key


@pytest.fixture(autouse=True)
def sessions() -> Iterator[None]:
    """User 42: a laptop, a phone and a tablet; user 7: one session."""
    clocks = Clocks()
    SessionStore.clear_all()
    with (
        override_settings(SESSION_ENGINE="django_prologue_sessions.backends.memory"),
        mock.patch.object(memory, "_now", clocks.monotonic_clock),
        mock.patch.object(memory, "_wall_now", clocks.wall_clock),
    ):
        save_new(LAPTOP, "42")
        clocks.advance(600)
        save_new(PHONE, "42")
        clocks.advance(600)
        save_new(TABLET, "42", expiry=3600)
        save_new(OTHER_USERS, "7")
        clocks.advance(2400)
        laptop = SessionStore(LAPTOP)
        laptop["cart"] = ["book"]
        laptop.save()
        yield
    SessionStore.clear_all()


def run(*args: str) -> str:
    out = StringIO()
    call_command("usersessions", *args, stdout=out)
    return out.getvalue()


def live_keys() -> set[str]:
    return {key for key, _ in SessionStore.store.items()}


def test_list() -> None:
    assert run("list", "42") == (
        "ID                               CREATED (UTC)        LAST SEEN (UTC)"
        "      EXPIRES (UTC)\n"
        f"{LAPTOP_ID}  2026-01-01 09:30:00  2026-01-01 10:30:00  2026-01-15 10:30:00\n"
        f"{TABLET_ID}  2026-01-01 09:50:00  2026-01-01 09:50:00  2026-01-01 10:50:00\n"
        f"{PHONE_ID}  2026-01-01 09:40:00  2026-01-01 09:40:00  2026-01-15 09:40:00\n"
    )


def test_ids_are_a_sha256_of_the_key_after_its_tag() -> None:
    # Stable across releases and SECRET_KEY rotations: what a Redis reader,
    # the pages and this command see. Only the tag comes from the key.
    digest = hashlib.sha256(b"django_prologue_sessions.session_id:" + LAPTOP.encode())
    assert (
        LAPTOP[:8] + base64.urlsafe_b64encode(digest.digest()).decode()[:23]
        == LAPTOP_ID
    )
    with override_settings(SECRET_KEY="rotated" * 8):
        assert session_id(LAPTOP) == LAPTOP_ID
    assert run("list", "7") == (
        "ID                               CREATED (UTC)        LAST SEEN (UTC)"
        "      EXPIRES (UTC)\n"
        f"{OTHER_USERS_ID}  2026-01-01 09:50:00  2026-01-01 09:50:00"
        "  2026-01-15 09:50:00\n"
    )


def test_list_a_user_without_sessions() -> None:
    assert run("list", "9") == "User '9' has no sessions.\n"


def test_revoke_one_session_by_its_id() -> None:
    assert run("revoke", "42", "--session", PHONE_ID) == (
        f"Revoked session {PHONE_ID} of user '42'.\n"
    )
    assert live_keys() == {LAPTOP, TABLET, OTHER_USERS}


def test_revoke_one_session_by_the_start_of_its_id() -> None:
    assert run("revoke", "42", "--session", "phone0001") == (
        f"Revoked session {TABLET_ID} of user '42'.\n"
    )
    assert live_keys() == {LAPTOP, PHONE, OTHER_USERS}


def test_a_start_shared_by_two_sessions_revokes_nothing() -> None:
    with pytest.raises(CommandError) as caught:
        run("revoke", "42", "--session", "phone000")
    assert str(caught.value) == (
        "2 sessions of user '42' start with 'phone000'; give more of the id."
    )
    assert live_keys() == {LAPTOP, PHONE, TABLET, OTHER_USERS}


# A session key is not an id: the command takes ids only.
@pytest.mark.parametrize("key", ["nosuchsession", OTHER_USERS_ID, PHONE, ""])
def test_revoke_a_session_the_user_does_not_have(key: str) -> None:
    with pytest.raises(CommandError) as caught:
        run("revoke", "42", "--session", key)
    assert str(caught.value) == f"User '42' has no session {key!r}."
    assert live_keys() == {LAPTOP, PHONE, TABLET, OTHER_USERS}


def test_revoke_all() -> None:
    assert run("revoke", "42", "--all") == "Revoked 3 sessions of user '42'.\n"
    assert live_keys() == {OTHER_USERS}
    assert run("revoke", "7", "--all") == "Revoked 1 session of user '7'.\n"
    assert run("revoke", "7", "--all") == "Revoked 0 sessions of user '7'.\n"
    assert live_keys() == set()


def test_revoke_all_but_one() -> None:
    assert run("revoke", "42", "--all", "--keep", "laptop") == (
        f"Revoked 2 sessions of user '42', kept {LAPTOP_ID}.\n"
    )
    assert live_keys() == {LAPTOP, OTHER_USERS}


def test_keeping_a_session_the_user_does_not_have_revokes_nothing() -> None:
    with pytest.raises(CommandError) as caught:
        run("revoke", "42", "--all", "--keep", OTHER_USERS_ID)
    assert str(caught.value) == f"User '42' has no session {OTHER_USERS_ID!r}."
    assert live_keys() == {LAPTOP, PHONE, TABLET, OTHER_USERS}


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("revoke", "42"), "revoke needs --session ID or --all."),
        (
            ("revoke", "42", "--session", PHONE, "--keep", LAPTOP),
            "--keep goes with --all.",
        ),
        (
            ("revoke", "42", "--session", PHONE, "--all"),
            "Error: argument --all: not allowed with argument --session",
        ),
        (
            ("list", "42", "--full-keys"),
            "Error: unrecognized arguments: --full-keys",
        ),
        (("list", "42", "--all"), "--session, --all and --keep go with revoke."),
        (
            ("list", "42", "--keep", LAPTOP),
            "--session, --all and --keep go with revoke.",
        ),
        ((), "Error: the following arguments are required: action, user_id"),
        (("flash", "42"), "flash needs --message TEXT, which goes with flash."),
        (
            ("list", "42", "--message", "Hi"),
            "flash needs --message TEXT, which goes with flash.",
        ),
        (
            ("flash", "42", "--message", "Hi", "--all"),
            "--session, --all and --keep go with revoke.",
        ),
        (
            ("forget", "42"),
            "Error: argument action: invalid choice: 'forget' "
            "(choose from 'list', 'revoke', 'flash')",
        ),
    ],
)
def test_wrong_arguments_change_nothing(args: tuple[str, ...], error: str) -> None:
    with pytest.raises(CommandError) as caught:
        run(*args)
    assert str(caught.value) == error
    assert live_keys() == {LAPTOP, PHONE, TABLET, OTHER_USERS}


SESSION_MESSAGES = "django.contrib.messages.storage.session.SessionStorage"


@override_settings(MESSAGE_STORAGE=SESSION_MESSAGES)
def test_flash_shows_a_message_once_in_each_of_the_users_sessions() -> None:
    out = run("flash", "42", "--message", "Maintenance at 6.", "--level", "warning")
    assert out == "Flashed 3 sessions of user '42'.\n"
    assert run("flash", "42", "--message", "A level by number", "--level", "25") == (
        "Flashed 3 sessions of user '42'.\n"
    )
    for key in (LAPTOP, PHONE, TABLET):
        assert json.loads(SessionStore(key)["_messages"]) == [
            ["__json_message", 0, 30, "Maintenance at 6.", ""],
            ["__json_message", 0, 25, "A level by number", ""],
        ]
    assert "_messages" not in SessionStore(OTHER_USERS).load()
    assert run("flash", "404", "--message", "Nobody") == (
        "Flashed 0 sessions of user '404'.\n"
    )


@pytest.mark.parametrize(
    ("storage", "error"),
    [
        (SESSION_MESSAGES, "Unknown message level name 'loud'."),
        ("django.contrib.messages.storage.fallback.FallbackStorage", "MESSAGE_STORAGE"),
    ],
)
def test_flash_that_cannot_be_delivered_changes_nothing(
    storage: str, error: str
) -> None:
    before = dict(SessionStore.store.items())
    with (
        override_settings(MESSAGE_STORAGE=storage),
        pytest.raises(CommandError) as caught,
    ):
        run("flash", "42", "--message", "Hi", "--level", "loud")
    assert error in str(caught.value)
    assert dict(SessionStore.store.items()) == before


def test_from_the_shell_the_memory_engine_is_out_of_reach() -> None:
    # manage.py runs in a process of its own, whose memory store is empty:
    # saying "no sessions" would mislead.
    err = StringIO()
    with pytest.raises(SystemExit) as exited:
        Command(stderr=err).run_from_argv(["manage.py", "usersessions", "list", "42"])
    assert exited.value.code == 1
    assert err.getvalue() == (
        "CommandError: The memory engine keeps sessions in the memory of the "
        "web server's process: this command, in a process of its own, cannot "
        "see them. Call django_prologue_sessions.user_sessions from the "
        "server's code instead (a view, an admin action), or use the Redis "
        "engine.\n"
    )


@pytest.mark.parametrize(
    "args", [("list", "42"), ("revoke", "42", "--all")], ids=["list", "revoke"]
)
def test_an_engine_without_an_index_by_user(args: tuple[str, ...]) -> None:
    engine = "django_prologue_sessions.backends.signed_cookies"
    with (
        override_settings(SESSION_ENGINE=engine),
        pytest.raises(CommandError) as caught,
    ):
        run(*args)
    assert str(caught.value).startswith(
        f"The session engine {engine!r} cannot list or revoke a user's sessions"
    )
    assert "rotate SECRET_KEY" in str(caught.value)


def record(key: str, ip: str | None, user_agent: str) -> None:
    session = SessionStore(key)
    here = [ip, user_agent, int(START.timestamp())]
    session[ACTIVITY_KEY] = {"login": here, "last": here}
    session.save()


@override_settings(PROLOGUE_SESSIONS_ACTIVITY=True)
def test_list_shows_where_each_session_was_last_seen() -> None:
    record(LAPTOP, "192.0.2.1", FIREFOX)
    record(PHONE, None, SAFARI_IPHONE)
    assert run("list", "42") == (
        "ID                               CREATED (UTC)        LAST SEEN (UTC)"
        "      EXPIRES (UTC)        LAST IP    DEVICE\n"
        f"{PHONE_ID}  2026-01-01 09:40:00  2026-01-01 10:30:00  2026-01-15 10:30:00"
        "  -          Safari on iPhone\n"
        f"{LAPTOP_ID}  2026-01-01 09:30:00  2026-01-01 10:30:00  2026-01-15 10:30:00"
        "  192.0.2.1  Firefox on Linux\n"
        f"{TABLET_ID}  2026-01-01 09:50:00  2026-01-01 09:50:00  2026-01-01 10:50:00"
        "  -          -\n"
    )
