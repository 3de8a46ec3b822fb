"""What every session engine of this package shares.

- ``SessionStoreBase``: the base of every engine's ``SessionStore``. It refuses
  a ``SESSION_SERIALIZER`` that unpickles, when the store is built, so before
  any cookie or stored payload is decoded: a forged or tampered payload must
  never reach ``pickle.loads``, and WSGI servers run no system checks. It also
  picks the serializer the engine uses (``serializer_class``), answers the
  expiry questions ``SessionMiddleware`` asks on every save without reading a
  setting or the clock each time, and holds the rules of the idle and absolute
  timeouts and of the anonymous age that each engine applies when it loads
  and stores a session (docs/expiry.md).
- ``ServerSessionBase``: for engines that keep sessions on the server (memory,
  Redis): ``create()`` and ``acreate()`` with a bounded number of attempts.
- ``FastJSONSerializer`` and ``compact_json``: Django's JSON, byte for byte,
  through one encoder built once.
- ``date_from_timestamp``: a store's time as an aware UTC datetime.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import time
import types
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from django.conf import settings
from django.contrib.sessions.backends.base import CreateError, SessionBase
from django.core import signing
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from django_prologue_sessions.backends._session_keys import (
    USER_ID_KEY,
    new_session_key,
    session_user_id,
)
from django_prologue_sessions.conf import app_settings

if TYPE_CHECKING:
    from django_prologue_sessions.migrate import Claims

__all__ = [
    "CREATE_ATTEMPTS",
    "REFRESH_BELOW",
    "SAVE_ATTEMPTS",
    "SIGNED_IN_KEY",
    "FastJSONSerializer",
    "ServerSessionBase",
    "SessionStoreBase",
    "compact_json",
    "date_from_timestamp",
    "refuse_unpickling",
    "session_settings",
    "still_changing",
    "unpickling_reason",
]

# Five clashes in a row among 36**24 keys or more means something else is wrong.
CREATE_ATTEMPTS = 5
# A save that finds the session changed since it was loaded merges and tries
# again (``django_prologue_sessions.merge``). Each conflict means that another
# request's save went through meanwhile, so together the requests always
# progress: a session saved by two requests at once needs a second try, while
# nine saving one session in a tight loop (tests/test_redis_merge.py) needed
# up to 25.
SAVE_ATTEMPTS = 100

#: ``json.dumps(value, separators=(",", ":"))``: one encoder, built once.
compact_json: Callable[[Any], str] = json.JSONEncoder(separators=(",", ":")).encode

SAFE_SERIALIZER = "django.contrib.sessions.serializers.JSONSerializer"

#: The session key of the time (Unix seconds) of the sign-in that began the
#: session, kept only while ``PROLOGUE_SESSIONS_ABSOLUTE_TIMEOUT`` is on.
SIGNED_IN_KEY = "_session_signed_in"
# With an idle timeout, a session's expiry is pushed back only once less than
# this share of its window is left: one refresh per half window, not one
# write per request.
REFRESH_BELOW = 0.5

expiry_logger = logging.getLogger("django_prologue_sessions.expiry")
# The clock of sign-in times (tests move it).
_now = time.time


class FastJSONSerializer(signing.JSONSerializer):
    """Django's ``JSONSerializer``, the same bytes, without an encoder per call."""

    def dumps(self, obj: Any) -> bytes:
        return compact_json(obj).encode("latin-1")


def still_changing() -> RuntimeError:
    """The error of a save that met a conflict ``SAVE_ATTEMPTS`` times."""
    return RuntimeError(
        f"The session was saved by other requests {SAVE_ATTEMPTS} times while "
        "this one tried to save it."
    )


def date_from_timestamp(timestamp: float) -> datetime:
    """A POSIX timestamp as an aware datetime in UTC."""
    return datetime.fromtimestamp(timestamp, UTC)


# Refusing pickle -------------------------------------------------------------

# Modules whose loading runs code named by the data: pickle and its kin.
_UNPICKLING_MODULES = frozenset(
    {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "jsonpickle"}
)


def _unpickles(obj: Any) -> bool:
    """Whether ``obj`` is one of the unpickling modules, or comes from one."""
    if not isinstance(obj, types.ModuleType) and not hasattr(obj, "__module__"):
        return False
    name = obj.__name__ if isinstance(obj, types.ModuleType) else obj.__module__
    return isinstance(name, str) and name.partition(".")[0] in _UNPICKLING_MODULES


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    """``code`` and the code of the functions and lambdas defined in it."""
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _unpickling_call(
    function: Any, owner: Any, seen: set[int], depth: int = 0
) -> str | None:
    """What unpickling callable ``function`` is or calls, by name; else None.

    Follows the globals its code names (``pickle``, ``loads`` imported from
    it) and the methods of ``owner`` it names (``self._decode``), a few
    levels deep.
    """
    function = inspect.unwrap(function)
    while isinstance(function, functools.partial):
        function = function.func
    if id(function) in seen or depth > 3:
        return None
    seen.add(id(function))
    if _unpickles(function):
        return f"{function.__module__}.{getattr(function, '__qualname__', '?')}"
    code = getattr(function, "__code__", None)
    if not isinstance(code, types.CodeType):
        return None
    namespace = getattr(function, "__globals__", {})
    for block in _code_objects(code):
        for name in block.co_names:
            target = namespace.get(name)
            if target is not None and _unpickles(target):
                return f"{function.__qualname__}() uses {name}"
            method = getattr(owner, name, None)
            if callable(method):
                found = _unpickling_call(method, owner, seen, depth + 1)
                if found is not None:
                    return found
    return None


def unpickling_reason(serializer: Any) -> str | None:
    """Why ``serializer`` (a ``SESSION_SERIALIZER``) unpickles; ``None`` if not.

    Certain signs only: a class (or base class) of a pickle module or with
    "pickle" in its name, or a ``loads`` that is, or calls, pickle's (or
    dill's, cloudpickle's, jsonpickle's) loading functions.
    """
    while isinstance(serializer, functools.partial):  # a factory of one
        serializer = serializer.func
    classes = inspect.getmro(serializer) if inspect.isclass(serializer) else ()
    for cls in classes:
        if (
            _unpickles(cls)
            or "pickle" in f"{cls.__module__}.{cls.__qualname__}".lower()
        ):
            return f"{cls.__module__}.{cls.__qualname__} is a pickle serializer"
    loads = getattr(serializer, "loads", None)
    if loads is None:
        return None
    found = _unpickling_call(loads, serializer, set())
    if found is not None:
        return f"its loads() unpickles ({found})"
    return None


@functools.cache
def refuse_unpickling(serializer: Any) -> type[Any]:
    """The serializer class an engine uses for ``serializer``; refuse pickle.

    Raise ``ImproperlyConfigured`` if ``serializer`` unpickles. Django's
    ``JSONSerializer`` gives ``FastJSONSerializer`` (the same bytes); any
    other serializer is used as it is.
    """
    reason = unpickling_reason(serializer)
    if reason is not None:
        name = ".".join(
            str(getattr(serializer, attribute, "?"))
            for attribute in ("__module__", "__qualname__")
        )
        raise ImproperlyConfigured(
            f"SESSION_SERIALIZER {name!r} unpickles: {reason}. The session "
            "engines of django_prologue_sessions refuse it, because unpickling "
            "a session payload runs any code a forged or tampered payload "
            "names. Use SESSION_SERIALIZER = "
            f"{SAFE_SERIALIZER!r} (the default), and store in the session only "
            "what JSON can hold."
        )
    if serializer is signing.JSONSerializer:
        return FastJSONSerializer
    result: type[Any] = serializer
    return result


class SessionSettings(NamedTuple):
    cookie_age: int
    expire_at_browser_close: bool
    idle_timeout: int | None
    absolute_timeout: int | None
    anonymous_age: int | None
    max_bytes: int


@functools.cache
def session_settings() -> SessionSettings:
    """The session settings every save reads, read once.

    A setting read costs about as much as the rest of an expiry method; the
    cache is emptied whenever a setting changes (``override_settings``), as
    Django does for its password hashers.
    """
    return SessionSettings(
        cookie_age=settings.SESSION_COOKIE_AGE,
        expire_at_browser_close=settings.SESSION_EXPIRE_AT_BROWSER_CLOSE,
        idle_timeout=app_settings.PROLOGUE_SESSIONS_IDLE_TIMEOUT,
        absolute_timeout=app_settings.PROLOGUE_SESSIONS_ABSOLUTE_TIMEOUT,
        anonymous_age=app_settings.PROLOGUE_SESSIONS_ANONYMOUS_AGE,
        max_bytes=app_settings.PROLOGUE_SESSIONS_MAX_BYTES,
    )


@receiver(setting_changed)
def _reset_session_settings(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith(("SESSION_", "PROLOGUE_SESSIONS_")):
        session_settings.cache_clear()


class SessionStoreBase(SessionBase):
    """The base of every ``SessionStore`` of this package.

    Building a store refuses a ``SESSION_SERIALIZER`` that unpickles
    (``ImproperlyConfigured``), once per serializer class: no request of an
    engine of this package decodes anything with it.

    The expiry methods give ``SessionBase``'s answers, from settings read once
    (``session_settings()``), and with no clock read for a session without an
    expiry of its own, the usual case. A subclass may still override them.

    The timeouts (docs/expiry.md): ``get_session_cookie_age()`` is
    ``PROLOGUE_SESSIONS_ANONYMOUS_AGE`` for a session without a user;
    ``store_age()`` is how long the store keeps a session, its expiry age cut
    to the idle timeout; an engine's load asks ``past_absolute_timeout()``
    and ``refresh_due()`` of the session it read, and setting the user's id
    (``login()``) starts the absolute timeout's clock.
    """

    #: The class that serializes the session: ``self.serializer``, or the
    #: faster class that writes the same bytes (``refuse_unpickling()``).
    serializer_class: type[Any]
    #: Where a server-side engine claims the sessions it moves in from
    #: ``PROLOGUE_SESSIONS_MIGRATE_FROM`` (``migrate``); None: no claim
    #: needed (the signed-cookie engine).
    migration_claims: ClassVar[Claims | None] = None
    # Provided by SessionBase, missing from django-stubs.
    _session_cache: dict[str, Any]

    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        self.serializer_class = refuse_unpickling(self.serializer)
        # The cookie as the client sent it, which the key setter drops when
        # it is not a key of this engine: the previous engine's key, for
        # PROLOGUE_SESSIONS_MIGRATE_FROM (``migrate``), read once at most.
        self._requested_key = session_key

    # SessionBase's lazy loading, but a cookie that this engine's key check
    # refused is loaded too: load() hands it to the previous engine
    # (``migrate``), once. The same steps as Django's otherwise.

    def _get_session(self, no_load: bool = False) -> dict[str, Any]:
        self.accessed = True
        try:
            return self._session_cache
        except AttributeError:
            if no_load or self._nothing_to_load():
                self._session_cache = {}
            else:
                self._session_cache = self.load()
        return self._session_cache

    async def _aget_session(self, no_load: bool = False) -> dict[str, Any]:
        self.accessed = True
        try:
            return self._session_cache
        except AttributeError:
            if no_load or self._nothing_to_load():
                self._session_cache = {}
            else:
                self._session_cache = await self.aload()
        return self._session_cache

    _session = property(_get_session)

    def _nothing_to_load(self) -> bool:
        """No key of ours, and no cookie for the previous engine either."""
        return self.session_key is None and not self._requested_key

    def is_empty(self) -> bool:
        # A cookie this engine's key check refused, not yet looked up in the
        # previous engine: the middleware must not delete it on a request that
        # never touched the session, as it may be a session to move in.
        if (
            self._requested_key
            and self.session_key is None
            and not hasattr(self, "_session_cache")
        ):
            from django_prologue_sessions.migrate import previous_engine

            if previous_engine() is not None:
                return False
        empty: bool = super().is_empty()
        return empty

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        if key == USER_ID_KEY:
            self._stamp_sign_in()

    async def aset(self, key: str, value: Any) -> None:
        await super().aset(key, value)
        if key == USER_ID_KEY:
            self._stamp_sign_in()

    def _stamp_sign_in(self) -> None:
        # login() sets the user's id; cycle_key() and a password change
        # (update_session_auth_hash()) do not, and keep the stamp.
        if session_settings().absolute_timeout is not None:
            self._session[SIGNED_IN_KEY] = int(_now())

    def get_session_cookie_age(self) -> int:
        # The session as loaded, never loaded from here (load() may ask).
        return self.default_age(getattr(self, "_session_cache", {}))

    def default_age(self, session: dict[str, Any]) -> int:
        """The age of ``session`` without an expiry of its own:
        ``PROLOGUE_SESSIONS_ANONYMOUS_AGE`` without a user, if set, else
        ``SESSION_COOKIE_AGE``."""
        config = session_settings()
        if config.anonymous_age is not None and session_user_id(session) is None:
            return config.anonymous_age
        return config.cookie_age

    def store_age(self, session: dict[str, Any]) -> float:
        """How long, from now, the store keeps ``session``: its expiry age
        (``set_expiry()``, else ``default_age()``), cut to the idle timeout."""
        expiry = session.get("_session_expiry")
        if expiry:
            age: float = self.get_expiry_age(expiry=expiry)
        else:
            age = self.default_age(session)
        idle = session_settings().idle_timeout
        return age if idle is None else min(age, idle)

    def sliding_age(self, session: dict[str, Any]) -> float | None:
        """With an idle timeout, the age a request that loads ``session``
        pushes its expiry back to (``store_age()``); else None."""
        if session_settings().idle_timeout is None or not session:
            return None
        return self.store_age(session)

    def refresh_due(self, session: dict[str, Any], left: float) -> float | None:
        """``sliding_age()`` if a loaded session with ``left`` seconds left
        is due for it (less than half of its window left), else None."""
        age = self.sliding_age(session)
        return age if age is not None and left < age * REFRESH_BELOW else None

    def past_absolute_timeout(self, session: dict[str, Any]) -> bool:
        """Whether a loaded ``session`` is past the absolute timeout, which
        is then logged: the engine must not serve it, and deletes it.

        A signed-in session with no sign-in time (signed in before the
        timeout was set) starts its clock now.
        """
        limit = session_settings().absolute_timeout
        if limit is None or not session:
            return False
        signed_in = session.get(SIGNED_IN_KEY)
        user = session_user_id(session)
        if signed_in is None:
            if user is not None:
                session[SIGNED_IN_KEY] = int(_now())
                self.modified = True
            return False
        ago = _now() - signed_in if isinstance(signed_in, int | float) else None
        if ago is not None and ago < limit:
            return False
        expiry_logger.info(
            "Session ended: PROLOGUE_SESSIONS_ABSOLUTE_TIMEOUT (%d s) reached, "
            "%s s after the sign-in of user %s.",
            limit,
            "?" if ago is None else f"{ago:.0f}",
            user,
        )
        return True

    def get_expiry_age(self, **kwargs: Any) -> int:
        if not kwargs and not self.get("_session_expiry"):
            return self.get_session_cookie_age()
        age: int = super().get_expiry_age(**kwargs)
        return age

    def get_expire_at_browser_close(self) -> bool:
        expiry = self.get("_session_expiry")
        if expiry is None:
            return session_settings().expire_at_browser_close
        return bool(expiry == 0)


class ServerSessionBase(SessionStoreBase):
    """A store that keeps sessions on the server, under random keys.

    ``create()`` and ``acreate()`` try ``CREATE_ATTEMPTS`` new keys, each
    saved with ``must_create=True`` (which raises ``CreateError`` on a key in
    use), then give up with ``RuntimeError``. ``_new_key()`` makes each key.
    """

    def _new_key(self) -> str:
        """A new session key, starting with ``_key_tag()``."""
        return new_session_key(self._key_tag())

    def _key_tag(self) -> str:
        """What a new key of this session starts with; an engine may derive
        it from the session (the Redis engine: from its user)."""
        return ""

    def create(self) -> None:
        for _attempt in range(CREATE_ATTEMPTS):
            self._session_key = self._new_key()
            try:
                self.save(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise RuntimeError(self._no_key_message())

    async def acreate(self) -> None:
        for _attempt in range(CREATE_ATTEMPTS):
            self._session_key = self._new_key()
            try:
                await self.asave(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise RuntimeError(self._no_key_message())

    def _no_key_message(self) -> str:
        return (
            f"Unable to create a new session key: {CREATE_ATTEMPTS} new keys in "
            f"a row were refused ({type(self).__module__})."
        )
