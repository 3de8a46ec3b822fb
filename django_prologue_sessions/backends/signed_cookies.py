"""A session engine that keeps the whole session in a signed cookie.

A drop-in for ``django.contrib.sessions.backends.signed_cookies``: the cookie
is signed by ``django.core.signing`` (``TimestampSigner``, compressed, with
the salt of Django's engine), so each engine reads the other's cookies, byte
for byte the same. It also:

- enforces each session's own expiry on the server, from the signing time
  carried in the cookie, not only ``SESSION_COOKIE_AGE``;
- encrypts the cookie with AES-GCM when ``PROLOGUE_SESSIONS_COOKIE_ENCRYPTION``
  is on, so that the client cannot read its session;
- raises ``SessionCookieTooLarge`` when saving, rather than send a cookie that
  the browser would silently drop;
- logs every rejected cookie on ``django.security.SuspiciousSession``;
- refuses a ``SESSION_SERIALIZER`` that unpickles (``SessionStoreBase``).
"""

from __future__ import annotations

import functools
import logging
import time
from datetime import datetime
from typing import Any, NamedTuple

from django.conf import settings
from django.core import signing
from django.core.signals import setting_changed
from django.dispatch import receiver

from django_prologue_sessions import migrate
from django_prologue_sessions.backends import _cookie_encryption
from django_prologue_sessions.backends.base import SessionStoreBase, session_settings
from django_prologue_sessions.conf import app_settings
from django_prologue_sessions.exceptions import SessionCookieTooLarge

logger = logging.getLogger("django.security.SuspiciousSession")

#: The salt of Django's engine, so that either reads the other's cookies.
SALT = "django.contrib.sessions.backends.signed_cookies"

# "; expires=Thu, 01 Jan 1970 00:00:00 GMT": http_date() is always 29 chars.
_EXPIRES_SIZE = len("; expires=") + 29
# The methods that decide the cookie's expiry attributes.
_EXPIRY_METHODS = (
    "get_expiry_age",
    "get_expire_at_browser_close",
    "get_session_cookie_age",
)


class _CookieSettings(NamedTuple):
    # Holds SECRET_KEY and SECRET_KEY_FALLBACKS as they were when built.
    signer: signing.TimestampSigner
    encrypt: bool
    max_bytes: int
    # The Set-Cookie bytes besides the value and the expiry attributes.
    attributes_size: int
    cookie_age: int
    # The expiry attributes' bytes of a session without its own expiry.
    default_expiry_size: int


@functools.cache
def _cookie_settings() -> _CookieSettings:
    # Cached, as reading a setting costs more than the rest of this, and
    # reset whenever a test overrides a setting (as Django does for hashers).
    attributes = [f"{settings.SESSION_COOKIE_NAME}="]
    if settings.SESSION_COOKIE_DOMAIN:
        attributes.append(f"; Domain={settings.SESSION_COOKIE_DOMAIN}")
    if settings.SESSION_COOKIE_PATH:
        attributes.append(f"; Path={settings.SESSION_COOKIE_PATH}")
    if settings.SESSION_COOKIE_SECURE:
        attributes.append("; Secure")
    if settings.SESSION_COOKIE_HTTPONLY:
        attributes.append("; HttpOnly")
    if settings.SESSION_COOKIE_SAMESITE:
        attributes.append(f"; SameSite={settings.SESSION_COOKIE_SAMESITE}")
    cookie_age = settings.SESSION_COOKIE_AGE
    return _CookieSettings(
        signer=signing.TimestampSigner(salt=SALT),
        encrypt=app_settings.PROLOGUE_SESSIONS_COOKIE_ENCRYPTION,
        max_bytes=app_settings.PROLOGUE_SESSIONS_COOKIE_MAX_BYTES,
        attributes_size=len("".join(attributes).encode()),
        cookie_age=cookie_age,
        default_expiry_size=(
            0 if settings.SESSION_EXPIRE_AT_BROWSER_CLOSE else _max_age_size(cookie_age)
        ),
    )


def _max_age_size(max_age: Any) -> int:
    # HttpResponse.set_cookie() writes int(max_age): 7 for a float 7.0 too.
    return _EXPIRES_SIZE + len(f"; Max-Age={int(max_age)}")


@receiver(setting_changed)
def _reset_cookie_settings(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith(
        ("SESSION_COOKIE_", "SESSION_EXPIRE_", "PROLOGUE_SESSIONS_COOKIE_", "SECRET_")
    ):
        _cookie_settings.cache_clear()


class SessionStore(SessionStoreBase):
    # Provided by SessionBase, missing from django-stubs.
    _session: dict[str, Any]
    _session_cache: dict[str, Any]
    # Whether the expiry methods are SessionStoreBase's, so that save() may size
    # the expiry attributes from the session and cached settings alone.
    _stock_expiry = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._stock_expiry = all(
            getattr(cls, name) is getattr(SessionStoreBase, name)
            for name in _EXPIRY_METHODS
        )

    def load(self) -> dict[str, Any]:
        """Read the session from the cookie; an invalid or expired one is empty
        (or, with ``PROLOGUE_SESSIONS_MIGRATE_FROM``, the previous engine's)."""
        session, rejected = self._read_cookie()
        if session is not None:
            return session
        return self._rejected(migrate.load_previous(self), rejected)

    async def aload(self) -> dict[str, Any]:
        session, rejected = self._read_cookie()
        if session is not None:
            return session
        # The previous engine may do I/O: its async path.
        return self._rejected(await migrate.aload_previous(self), rejected)

    def _read_cookie(self) -> tuple[dict[str, Any] | None, bool]:
        """The session the cookie holds, or None and whether it was rejected
        (not a valid cookie of this engine, rather than absent or expired)."""
        value = self.session_key
        if value is None:
            return None, False
        try:
            if value.startswith(_cookie_encryption.ENCRYPTED_PREFIX):
                data, signed_at = _cookie_encryption.decrypt(value)
                session = self.serializer_class().loads(data)
            else:
                signer = _cookie_settings().signer
                session = signer.unsign_object(value, serializer=self.serializer_class)
                # What unsign() checked the signature of: "data:timestamp".
                signed_at = signing.b62_decode(value.rsplit(signer.sep, 2)[1])
            if not isinstance(session, dict):
                raise ValueError("The session is not a dict.")
            if self._expired(session, signed_at):
                return None, False
        except Exception:
            # Anything that fails here came from the client: a tampered,
            # truncated or otherwise invalid cookie. Never let it raise.
            return None, True
        if self.past_absolute_timeout(session):
            self._session_key = None  # ended: the middleware deletes the cookie
            return {}, False
        return session, False

    def _rejected(self, session: dict[str, Any], rejected: bool) -> dict[str, Any]:
        # load_previous() started afresh, as the server-side engines do for
        # an unknown key, so that an emptied session deletes the cookie.
        if rejected and not session:
            logger.warning("Session data corrupted")
        return session

    def _expired(self, session: dict[str, Any], signed_at: int) -> bool:
        """Whether ``session``, signed at ``signed_at``, has expired; if not,
        and an idle timeout is on, it is marked modified when a refresh is
        due, so that the middleware sends it again, signed afresh."""
        now = time.time()
        expiry = session.get("_session_expiry")
        window: float
        if isinstance(expiry, str):
            if datetime.fromisoformat(expiry).timestamp() < now:
                return True
            idle = session_settings().idle_timeout
            if idle is None:
                return False
            window = idle
        else:
            # A number of seconds of inactivity since the cookie was signed;
            # none (or 0, "at browser close") falls back to the default age.
            window = self.store_age(session)
        left = window - (now - signed_at)
        if left < 0:
            return True
        if self.refresh_due(session, left) is not None:
            self.modified = True
        return False

    def create(self) -> None:
        # Nothing to store: the cookie is set from the session when saved.
        self.modified = True

    def save(self, must_create: bool = False) -> None:
        config = _cookie_settings()
        session = self._session
        if config.encrypt:
            data = self.serializer_class().dumps(session)
            value = _cookie_encryption.encrypt(data, int(time.time()))
        else:
            value = config.signer.sign_object(
                session, serializer=self.serializer_class, compress=True
            )
        size = (
            len(value)
            + config.attributes_size
            + self._expiry_attributes_size(session, config)
        )
        if size > config.max_bytes:
            raise SessionCookieTooLarge(size, config.max_bytes)
        self._session_key = value
        self.modified = True

    def _expiry_attributes_size(
        self, session: dict[str, Any], config: _CookieSettings
    ) -> int:
        # The same decision and Max-Age as SessionMiddleware's.
        if not self._stock_expiry:
            if self.get_expire_at_browser_close():
                return 0
            return _max_age_size(self.get_expiry_age())
        # SessionBase's methods, spelled out to read the session once.
        expiry = session.get("_session_expiry")
        if expiry is None:
            age = self.default_age(session)
            if age == config.cookie_age or session_settings().expire_at_browser_close:
                return config.default_expiry_size
            return _max_age_size(age)
        if expiry == 0:
            return 0
        if not expiry:
            return _max_age_size(config.cookie_age)
        if isinstance(expiry, (datetime, str)):
            return _max_age_size(self.get_expiry_age())
        return _max_age_size(expiry)

    def exists(self, session_key: str | None = None) -> bool:
        # The session lives in the client's cookie: there is no record to find.
        return False

    def delete(self, session_key: str | None = None) -> None:
        self._session_key = None
        self._session_cache = {}
        self.modified = True

    def cycle_key(self) -> None:
        # The cookie is re-signed (with a new timestamp) when saved.
        self.save()

    @classmethod
    def clear_expired(cls) -> None:
        pass

    # Pure CPU work: the async twins call the sync code directly.

    async def acreate(self) -> None:
        self.create()

    async def asave(self, must_create: bool = False) -> None:
        self.save(must_create=must_create)

    async def aexists(self, session_key: str | None = None) -> bool:
        return self.exists(session_key)

    async def adelete(self, session_key: str | None = None) -> None:
        self.delete(session_key)

    async def acycle_key(self) -> None:
        self.cycle_key()

    @classmethod
    async def aclear_expired(cls) -> None:
        cls.clear_expired()
