"""A user's sessions: list them, end one, or end all ("log out everywhere").

    from django_prologue_sessions.user_sessions import list_sessions, revoke_all

    for session in list_sessions(request.user):
        print(session.id, session.created, session.last_seen)
    revoke_all(request.user, keep=request.session.session_key)

A listed session is named by its ``id``, a one-way digest of its session key
(``session_id()``): the key is a credential, which a listing never holds.

The engine named by ``SESSION_ENGINE`` does the work: the memory and Redis
engines keep an index of each logged-in user's sessions (by the
``_auth_user_id`` that ``django.contrib.auth.login()`` stores), so these calls
never scan the store. An engine supports them by implementing
``SupportsUserSessions`` on its ``SessionStore``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from importlib import import_module
from typing import Any, Protocol, cast
from uuid import UUID

from django.conf import settings
from django.db.models import Model

from django_prologue_sessions.activity import SessionActivity
from django_prologue_sessions.backends._session_keys import (
    is_session_id,
    session_id,
)
from django_prologue_sessions.exceptions import UserSessionsUnsupported

__all__ = [
    "SessionChange",
    "SupportsSessionChanges",
    "SupportsUserSessions",
    "UserSession",
    "list_sessions",
    "revoke_all",
    "revoke_session",
    "session_id",
    "user_id_of",
]

SUPPORTING_ENGINES = (
    "django_prologue_sessions.backends.memory",
    "django_prologue_sessions.backends.redis",
)
SIGNED_COOKIE_ENGINES = (
    "django_prologue_sessions.backends.signed_cookies",
    "django.contrib.sessions.backends.signed_cookies",
)


@dataclass(frozen=True)
class UserSession:
    """One live session of a user. Times are aware datetimes in UTC.

    ``id`` names the session for good: ``session_id()`` of its key, which
    it never gives back. Compare it with ``session_id(request.session.
    session_key)`` to find the current session; pass the ``UserSession``
    to ``revoke_session()`` to end it.
    ``created`` is when the session key was first saved: ``login()`` gives the
    session a new key, so it is usually when the user logged in.
    ``last_seen`` is when the session was last saved: the last request that
    changed it, or every request with ``SESSION_SAVE_EVERY_REQUEST = True``.
    ``expires`` is when the store will drop it unless it is saved again.
    ``activity`` is what ``PROLOGUE_SESSIONS_ACTIVITY`` recorded of it (IP
    address and user agent at login and when last seen, and when); ``None``
    when nothing was (recording off, or a session from before it was on).
    """

    id: str
    created: datetime
    last_seen: datetime
    expires: datetime
    activity: SessionActivity | None = None


class SupportsUserSessions(Protocol):
    """What an engine's ``SessionStore`` class implements for this module.

    ``user_id`` is the string stored under ``_auth_user_id``. The engine keeps
    its index of sessions by user up to date on every save (a session's user
    may change: login, logout, another login), delete and expiry, and never
    returns a session that is gone.
    """

    @classmethod
    def list_user_sessions(cls, user_id: str) -> list[UserSession]:
        """The user's live sessions, in any order."""
        ...

    @classmethod
    def revoke_user_sessions(
        cls,
        user_id: str,
        session_ids: Collection[str] | None = None,
        keep: str | None = None,
    ) -> int:
        """Delete the user's sessions, or only those whose ids are in
        ``session_ids``.

        Never a session of another user, nor the one whose id is ``keep``.
        Ids that name no session of the user are ignored. Return how many live
        sessions were deleted. A request still running on a deleted session
        must not bring it back when it saves (``UpdateError``, as for a
        logout).
        """
        ...


SessionChange = Callable[[dict[str, Any]], bool]
"""A change to a stored session's data, made in place; ``True`` if it changed
anything. It may be called more than once for one session, each time on the
session as stored then, so it must depend only on what it is given."""


class SupportsSessionChanges(Protocol):
    """What an engine's ``SessionStore`` class implements to change a user's
    sessions from outside their requests (``flash.flash_user()``).

    Each of the user's live sessions, as its index names it, is read, given
    to ``change``, and written back only if it is still stored as it was
    read (a conditional write), keeping its expiry and its dates; a session
    saved meanwhile is read again and ``change`` applied again, and a
    session that ended meanwhile stays ended. A request that had loaded the
    session before and saves after meets the changed session as a
    concurrent save, and merges with it as with any other. Return how many
    sessions were changed.
    """

    @classmethod
    def change_user_sessions(cls, user_id: str, change: SessionChange) -> int: ...

    @classmethod
    async def achange_user_sessions(
        cls, user_id: str, change: SessionChange
    ) -> int: ...


def user_id_of(user_or_id: Model | str | int | UUID) -> str:
    """The id as ``login()`` stores it in the session: a string.

    A user object gives ``user._meta.pk.value_to_string(user)``; an id given
    as an ``int``, ``UUID`` or ``str`` is turned into a string.
    """
    if isinstance(user_or_id, Model):
        if user_or_id.pk is None:
            raise ValueError("This user is not saved: it has no id, nor sessions.")
        return user_or_id._meta.pk.value_to_string(user_or_id)
    if isinstance(user_or_id, str | UUID) or (
        isinstance(user_or_id, int) and not isinstance(user_or_id, bool)
    ):
        return str(user_or_id)
    raise TypeError(
        "Expected a user object or a user's id (str, int or UUID), not "
        f"{type(user_or_id).__name__}."
    )


def list_sessions(user_or_id: Model | str | int | UUID) -> list[UserSession]:
    """The user's live sessions, most recently seen first."""
    sessions = _engine().list_user_sessions(user_id_of(user_or_id))
    return sorted(
        sessions,
        key=lambda s: (s.last_seen, s.created, s.id),
        reverse=True,
    )


def revoke_session(
    user_or_id: Model | str | int | UUID, session: str | UserSession
) -> bool:
    """End one session of the user; ``False`` if the user has no such session.

    ``session`` is a session key (``request.session.session_key``), a
    ``UserSession`` from ``list_sessions()``, or its ``id`` (31 characters,
    where a key has 32: the two are never mistaken). Another user's session
    is left alone: ``False`` too.
    """
    engine = _engine()
    return engine.revoke_user_sessions(user_id_of(user_or_id), (_id(session),)) > 0


def revoke_all(
    user_or_id: Model | str | int | UUID, *, keep: str | UserSession | None = None
) -> int:
    """End every session of the user but ``keep``; return how many ended.

    Pass ``keep=request.session.session_key`` to log the user out everywhere
    else, e.g. after a password change; ``keep`` may also be a ``UserSession``
    or its ``id``.
    """
    kept = None if keep is None else _id(keep)
    return _engine().revoke_user_sessions(user_id_of(user_or_id), None, kept)


def _id(session: str | UserSession) -> str:
    if isinstance(session, UserSession):
        return session.id
    if isinstance(session, str):
        return session if is_session_id(session) else session_id(session)
    raise TypeError(
        "Expected a session key or id (str), or a UserSession, not "
        f"{type(session).__name__}."
    )


def implements_user_sessions(store: object) -> bool:
    """Whether an engine's ``SessionStore`` class meets ``SupportsUserSessions``."""
    return callable(getattr(store, "list_user_sessions", None)) and callable(
        getattr(store, "revoke_user_sessions", None)
    )


def _engine() -> SupportsUserSessions:
    return cast(
        SupportsUserSessions,
        engine_supporting(
            ("list_user_sessions", "revoke_user_sessions"),
            "list or revoke",
            signed_cookies=(
                "To log users out everywhere, rotate SECRET_KEY without keeping "
                "the old key in SECRET_KEY_FALLBACKS (everyone is logged out), or "
                "keep a per-user token in the session and check it on each request "
                "(django.contrib.auth does so with the password: changing it ends "
                "the user's other sessions)."
            ),
        ),
    )


def engine_supporting(methods: tuple[str, ...], doing: str, signed_cookies: str) -> Any:
    """The ``SessionStore`` of ``SESSION_ENGINE`` if it has all of ``methods``.

    Else ``ImproperlyConfigured``: the engine cannot ``doing`` a user's
    sessions; ``signed_cookies`` is the advice given with a signed-cookie
    engine.
    """
    engine = settings.SESSION_ENGINE
    store = import_module(engine).SessionStore
    if all(callable(getattr(store, method, None)) for method in methods):
        return store
    message = (
        f"The session engine {engine!r} cannot {doing} a user's "
        "sessions: it keeps no index of sessions by user. Engines that do: "
        f"{', '.join(SUPPORTING_ENGINES)}."
    )
    if engine in SIGNED_COOKIE_ENGINES:
        message += (
            " A signed-cookie session is kept by the browser alone, with no "
            f"record on the server to reach. {signed_cookies}"
        )
    raise UserSessionsUnsupported(message)
