"""Exceptions raised by the session engines.

Each subclasses an exception Django already handles where one fits, so code
written against Django's engines keeps working.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured


class SessionCookieTooLarge(ValueError):
    """A signed-cookie session would not fit in one browser cookie.

    Browsers silently drop a cookie whose name, value and attributes exceed
    4096 bytes, which would lose the session without a word; raising at save
    time makes the failure visible to the developer instead.
    """

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"The session cookie would be {size} bytes, over the limit of "
            f"{limit} bytes (PROLOGUE_SESSIONS_COOKIE_MAX_BYTES). Browsers drop "
            "such cookies silently. Store less in the session, or use a "
            "server-side engine (memory or redis)."
        )


class SessionStoreUnavailable(RuntimeError):
    """The session store (Redis) could not be reached in time.

    Raised instead of loading an empty session, so that a store outage never
    logs users out nor overwrites their stored session. The client's cookie
    is left untouched and nothing is written.
    """


class SessionWriteOutcomeUnknown(SessionStoreUnavailable):
    """A write was sent to the session store, but no reply came in time.

    Unlike a write that never left (Redis refused the connection, or no
    connection was free), this one may have been applied, or may still be
    when a paused or overloaded Redis resumes: the session may hold what the
    request wrote, or what it held before.
    """


class UserSessionsUnsupported(ImproperlyConfigured):
    """The session engine cannot list or revoke a user's sessions.

    It keeps no index of sessions by user: the signed-cookie engine (the
    browser alone holds the session), Django's engines, or the Redis engine
    with its index turned off. The ready-made pages show a page that says so.
    """
