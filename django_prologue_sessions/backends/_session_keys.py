"""What the memory and Redis engines share: new session keys, and the user
a session belongs to."""

from __future__ import annotations

import os
from typing import Any

from django.contrib.sessions.backends.base import VALID_KEY_CHARS

KEY_LENGTH = 32

#: The session key ``django.contrib.auth.login()`` stores the user's id under
#: (``django.contrib.auth.SESSION_KEY``), named here so that the engines need
#: no auth app.
USER_ID_KEY = "_auth_user_id"

# Random bytes below 252 (7 * 36) map evenly onto the 36 key characters, the
# others are dropped: as uniform as get_random_string(), in one C call
# instead of 32 calls to SystemRandom.
_KEY_CHARACTERS = bytes(
    VALID_KEY_CHARS.encode()[byte % 36] if byte < 252 else 0 for byte in range(256)
)
_UNEVEN_BYTES = bytes(range(252, 256))


def new_session_key(tag: str = "") -> str:
    """``tag`` then random characters of ``[a-z0-9]``: 32 in all.

    Without a tag, 32 random characters (about 165 bits), like Django's own
    keys; the Redis engine starts a user's session with the user's tag.
    """
    length = KEY_LENGTH - len(tag)
    while True:
        key = key_characters(os.urandom(48))
        if len(key) >= length:
            return tag + key[:length]


def key_characters(data: bytes) -> str:
    """The characters of ``[a-z0-9]`` that the bytes of ``data`` map evenly
    onto (a few bytes map to none): random bytes give random characters."""
    return data.translate(_KEY_CHARACTERS, _UNEVEN_BYTES).decode()


def session_user_id(session: dict[str, Any]) -> str | None:
    """The session's user id as ``login()`` stores it; an int counts as its string."""
    user = session.get(USER_ID_KEY)
    return None if user is None else str(user)
