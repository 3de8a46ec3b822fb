"""A user's sessions: list them, end one, or end all ("log out everywhere").

    from django_prologue_sessions.user_sessions import list_sessions, revoke_all

    for session in list_sessions(request.user):
        print(session.session_key, session.created, session.last_seen)
    revoke_all(request.user, keep=request.session.session_key)

The engine named by ``SESSION_ENGINE`` does the work: the memory and Redis
engines keep an index of each logged-in user's sessions (by the
``_auth_user_id`` that ``django.contrib.auth.login()`` stores), so these calls
never scan the store. An engine supports them by implementing
``SupportsUserSessions`` on its ``SessionStore``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from importlib import import_module
from typing import Protocol, cast
from uuid import UUID

from django.conf import settings
from django.db.models import Model

from django_prologue_sessions.activity import SessionActivity
from django_prologue_sessions.exceptions import UserSessionsUnsupported

__all__ = [
    "SupportsUserSessions",
    "UserSession",
    "list_sessions",
    "revoke_all",
    "revoke_session",
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

    ``created`` is when the session key was first saved: ``login()`` gives the
    session a new key, so it is usually when the user logged in.
    ``last_seen`` is when the session was last saved: the last request that
    changed it, or every request with ``SESSION_SAVE_EVERY_REQUEST = True``.
    ``expires`` is when the store will drop it unless it is saved again.
    ``activity`` is what ``PROLOGUE_SESSIONS_ACTIVITY`` recorded of it (IP
    address and user agent at login and when last seen, and when); ``None``
    when nothing was (recording off, or a session from before it was on).
    """

    session_key: str
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
        session_keys: Collection[str] | None = None,
        keep: str | None = None,
    ) -> int:
        """Delete the user's sessions, or only those in ``session_keys``.

        Never a session of another user, nor ``keep``. Return how many live
        sessions were deleted. A request still running on a deleted session
        must not bring it back when it saves (``UpdateError``, as for a
        logout).
        """
        ...


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
        key=lambda s: (s.last_seen, s.created, s.session_key),
        reverse=True,
    )


def revoke_session(user_or_id: Model | str | int | UUID, session_key: str) -> bool:
    """End one session of the user; ``False`` if the user has no such session.

    A key of another user's session is left alone: ``False`` too.
    """
    engine = _engine()
    return engine.revoke_user_sessions(user_id_of(user_or_id), (session_key,)) > 0


def revoke_all(user_or_id: Model | str | int | UUID, *, keep: str | None = None) -> int:
    """End every session of the user but ``keep``; return how many ended.

    Pass ``keep=request.session.session_key`` to log the user out everywhere
    else, e.g. after a password change.
    """
    return _engine().revoke_user_sessions(user_id_of(user_or_id), None, keep)


def implements_user_sessions(store: object) -> bool:
    """Whether an engine's ``SessionStore`` class meets ``SupportsUserSessions``."""
    return callable(getattr(store, "list_user_sessions", None)) and callable(
        getattr(store, "revoke_user_sessions", None)
    )


def _engine() -> SupportsUserSessions:
    engine = settings.SESSION_ENGINE
    store = import_module(engine).SessionStore
    if implements_user_sessions(store):
        return cast(SupportsUserSessions, store)
    message = (
        f"The session engine {engine!r} cannot list or revoke a user's "
        "sessions: it keeps no index of sessions by user. Engines that do: "
        f"{', '.join(SUPPORTING_ENGINES)}."
    )
    if engine in SIGNED_COOKIE_ENGINES:
        message += (
            " A signed-cookie session is kept by the browser alone, with no "
            "record on the server to list or delete. To log users out "
            "everywhere, rotate SECRET_KEY without keeping the old key in "
            "SECRET_KEY_FALLBACKS (everyone is logged out), or keep "
            "a per-user token in the session and check it on each request "
            "(django.contrib.auth does so with the password: changing it ends "
            "the user's other sessions)."
        )
    raise UserSessionsUnsupported(message)
