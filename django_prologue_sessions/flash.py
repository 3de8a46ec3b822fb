"""Prologue's level-filtered flash messages, on top of ``django.contrib.messages``.

There is one store: the request's message storage (``request._messages``,
whatever ``MESSAGE_STORAGE`` is). ``flash()`` adds to it like
``messages.add_message()`` does, and the readers here take out only the
messages of the levels asked for; the rest stay stored, in order, for a
later call or a later request.

Each function has an async twin (``aflash()``, ``aget_flashed()`` ...) for
async views: it first loads the session through the engine's async methods
when the message storage keeps messages there, so that the storage then
reads and writes it in memory, with no session I/O on the event loop.

``flash_user()`` flashes without a request: it adds the message to each of
a user's stored sessions, through the engine's conditional change of a
user's sessions (``user_sessions.SupportsSessionChanges``), where the
message storage reads it at the session's next request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol, cast

from django.conf import settings
from django.contrib.messages import constants
from django.contrib.messages.storage.base import BaseStorage, Message
from django.contrib.messages.storage.session import SessionStorage
from django.contrib.messages.utils import get_level_tags
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from uuid import UUID

    from django.db.models import Model
    from django.utils.functional import _StrOrPromise

    from django_prologue_sessions.user_sessions import (
        SessionChange,
        SupportsSessionChanges,
    )

__all__ = [
    "aflash",
    "aflash_user",
    "aget_flashed",
    "apeek_flashed",
    "apop_flashed",
    "flash",
    "flash_user",
    "get_flashed",
    "peek_flashed",
    "pop_flashed",
    "resolve_level",
]

Level = int | str
"""A message level: one of ``messages.constants`` (any integer) or its name."""

Levels = Level | Iterable[Level] | None
"""One level, several of them, or ``None`` for every level."""


def flash(
    request: HttpRequest,
    message: _StrOrPromise,
    level: Level = constants.INFO,
    extra_tags: str = "",
) -> None:
    """Add ``message`` for a later request, like ``messages.add_message()``.

    ``level`` is a level integer or its name (``"error"``, a tag from
    ``MESSAGE_TAGS`` ...). Messages below ``MESSAGE_LEVEL`` are dropped.
    """
    # A lazy translation is fine: the storage turns it into str when it saves.
    _storage(request).add(resolve_level(level), cast(str, message), extra_tags)


def get_flashed(request: HttpRequest, level: Levels = None) -> list[Message]:
    """Return the messages of ``level`` (all if ``None``), oldest first.

    Only the returned messages are consumed: those of other levels stay
    stored for a later call or a later request.
    """
    return _take(_storage(request), _matcher(level))


def pop_flashed(request: HttpRequest, level: Levels = None) -> Message | None:
    """Return the oldest message of ``level`` and consume only it, or ``None``.

    This is Prologue's ``getFlashedMsg(level)``.
    """
    taken = _take(_storage(request), _matcher(level), limit=1)
    return taken[0] if taken else None


def peek_flashed(request: HttpRequest, level: Levels = None) -> list[Message]:
    """Return the messages ``get_flashed()`` would, without consuming any."""
    return _peek(_storage(request), _matcher(level))


async def aflash(
    request: HttpRequest,
    message: _StrOrPromise,
    level: Level = constants.INFO,
    extra_tags: str = "",
) -> None:
    """``flash()`` for async views."""
    storage = _storage(request)
    storage.add(resolve_level(level), cast(str, message), extra_tags)
    # Adding is in memory; the session is needed when the response stores
    # the messages, which a dropped message (empty, below MESSAGE_LEVEL)
    # does not make happen.
    if cast(_StorageLists, storage).added_new:
        await _aload_session(request, storage)


async def aget_flashed(request: HttpRequest, level: Levels = None) -> list[Message]:
    """``get_flashed()`` for async views."""
    return _take(*await _aloaded(request, level))


async def apop_flashed(request: HttpRequest, level: Levels = None) -> Message | None:
    """``pop_flashed()`` for async views."""
    taken = _take(*await _aloaded(request, level), limit=1)
    return taken[0] if taken else None


async def apeek_flashed(request: HttpRequest, level: Levels = None) -> list[Message]:
    """``peek_flashed()`` for async views.

    Awaited before rendering, it also leaves the messages loaded, so that
    the template tags and ``{% for message in messages %}`` need no I/O.
    """
    return _peek(*await _aloaded(request, level))


def flash_user(
    user_or_id: Model | str | int | UUID,
    message: _StrOrPromise,
    level: Level = constants.INFO,
    *,
    extra_tags: str = "",
) -> int:
    """Flash ``message`` to every live session of a user; return how many.

    Needs no request: call it from a management command, a thread, a task
    queue's worker. Each session shows the message once, at its next read
    of that level, like any message flashed in one of its requests.

    Each session is changed by a conditional write: a request saving it at
    the same moment keeps its own changes and the message, a session that
    ends meanwhile stays ended, and concurrent calls deliver every message.
    Needs the memory or Redis engine and a message storage that keeps
    messages in the session; else ``ImproperlyConfigured``.
    """
    engine, user_id, change = _user_flash(user_or_id, message, level, extra_tags)
    return 0 if change is None else engine.change_user_sessions(user_id, change)


async def aflash_user(
    user_or_id: Model | str | int | UUID,
    message: _StrOrPromise,
    level: Level = constants.INFO,
    *,
    extra_tags: str = "",
) -> int:
    """``flash_user()`` for async code: the engine's I/O is awaited."""
    engine, user_id, change = _user_flash(user_or_id, message, level, extra_tags)
    if change is None:
        return 0
    return await engine.achange_user_sessions(user_id, change)


def resolve_level(level: Level) -> int:
    """Turn a level integer or name into the integer Django stores.

    Names are case-insensitive: Django's (``debug`` ... ``error``) and the tags
    of ``MESSAGE_TAGS``. An unknown or ambiguous name raises ``ValueError``.
    """
    if isinstance(level, bool) or not isinstance(level, int | str):
        raise TypeError(
            f"A message level is an integer or a level name, not {level!r}."
        )
    if isinstance(level, int):
        return level
    name = level.strip().lower()
    default = constants.DEFAULT_LEVELS.get(name.upper())
    if default is not None:
        return default
    tagged = {number for number, tag in get_level_tags().items() if tag.lower() == name}
    if len(tagged) == 1:
        return tagged.pop()
    if tagged:
        raise ValueError(
            f"The message level name {level!r} is the tag of several levels "
            f"in MESSAGE_TAGS ({sorted(tagged)}); pass the level integer instead."
        )
    tags = (tag.lower() for tag in get_level_tags().values() if tag)
    known = sorted({*(n.lower() for n in constants.DEFAULT_LEVELS), *tags})
    raise ValueError(
        f"Unknown message level name {level!r}. Use a level integer or one of: "
        f"{', '.join(known)} (names from MESSAGE_TAGS count too)."
    )


class _StorageLists(Protocol):
    # BaseStorage's two lists, which django-stubs does not declare: the
    # messages read from the store, and those added during this request.
    _loaded_messages: list[Message]
    _queued_messages: list[Message]
    added_new: bool


def _storage(request: HttpRequest) -> BaseStorage:
    storage = getattr(request, "_messages", None)
    if storage is None:
        if not hasattr(request, "META"):
            raise TypeError(
                "Flash messages need a Django HttpRequest, not "
                f"{type(request).__name__!r}."
            )
        raise ImproperlyConfigured(
            "Flash messages need Django's message framework: add "
            "'django.contrib.messages' to INSTALLED_APPS, and "
            "'django.contrib.sessions.middleware.SessionMiddleware' followed by "
            "'django.contrib.messages.middleware.MessageMiddleware' to MIDDLEWARE."
        )
    return cast(BaseStorage, storage)


async def _aloaded(
    request: HttpRequest, level: Levels
) -> tuple[BaseStorage, Callable[[Message], bool]]:
    """The storage, with its session loaded, and the matcher of ``level``."""
    storage, matches = _storage(request), _matcher(level)
    await _aload_session(request, storage)
    return storage, matches


async def _aload_session(request: HttpRequest, storage: BaseStorage) -> None:
    # The storage reads and writes request.session synchronously: where it
    # keeps messages there (the session storage, or the fallback storage's
    # overflow), load the session first through the engine's aload(). Any
    # async read loads it whole; an already loaded session costs nothing.
    storages = [storage, *getattr(storage, "storages", ())]
    if any(isinstance(each, SessionStorage) for each in storages):
        await request.session.akeys()


def _take(
    storage: BaseStorage, matches: Callable[[Message], bool], limit: int | None = None
) -> list[Message]:
    lists = cast(_StorageLists, storage)
    taken: list[Message] = []
    for stored in (lists._loaded_messages, lists._queued_messages):
        kept = []
        for message in stored:
            if matches(message) and (limit is None or len(taken) < limit):
                taken.append(message)
            else:
                kept.append(message)
        stored[:] = kept
    if taken:
        # Until the storage is iterated, update() writes back what it holds
        # only if something was added: taking is a change too, or the taken
        # messages would stay in the cookie or session. (Once iterated, it
        # stores just the queued messages, which are the unread ones.)
        lists.added_new = True
    return taken


def _peek(storage: BaseStorage, matches: Callable[[Message], bool]) -> list[Message]:
    lists = cast(_StorageLists, storage)
    return [m for m in [*lists._loaded_messages, *lists._queued_messages] if matches(m)]


def _matcher(level: Levels) -> Callable[[Message], bool]:
    if level is None:
        return lambda message: True
    if isinstance(level, Iterable) and not isinstance(level, str | bytes):
        wanted = {resolve_level(each) for each in level}
    else:
        # resolve_level() rejects what is not a level, bytes included.
        wanted = {resolve_level(cast(Level, level))}
    return lambda message: message.level in wanted


# flash_user() -----------------------------------------------------------------

_MESSAGES_IN_THE_SESSION = (
    "MESSAGE_STORAGE = 'django.contrib.messages.storage.session.SessionStorage'"
)


def _user_flash(
    user_or_id: Model | str | int | UUID,
    message: _StrOrPromise,
    level: Level,
    extra_tags: str,
) -> tuple[SupportsSessionChanges, str, SessionChange | None]:
    """The engine, the user's id, and the change that adds the message to a
    session's data (None if the storage drops it: empty, or below
    ``MESSAGE_LEVEL``). Raises on a setup that cannot deliver it."""
    # Imported here: the package root imports this module, and need not load
    # the user index's machinery (models, activity) for flash().
    from django_prologue_sessions.user_sessions import engine_supporting, user_id_of

    storage_class = _session_storage_class()
    engine = cast(
        "SupportsSessionChanges",
        engine_supporting(
            ("change_user_sessions", "achange_user_sessions"),
            "flash messages to",
            signed_cookies=(
                "Flash in the user's own requests (flash()), or use an engine "
                "that keeps sessions on the server."
            ),
        ),
    )
    user_id = user_id_of(user_or_id)
    number = resolve_level(level)

    def add_message(session: dict[str, Any]) -> bool:
        # The storage Django reads the messages with, over the stored
        # session's data: it adds the message as it would in a request,
        # encoded as it encodes them.
        request = HttpRequest()
        request.session = session  # type: ignore[assignment]
        storage = storage_class(request)
        storage.add(number, cast(str, message), extra_tags)
        if not cast(_StorageLists, storage).added_new:
            return False
        storage.update(HttpResponse())
        return True

    return engine, user_id, add_message if add_message({}) else None


def _session_storage_class() -> type[SessionStorage]:
    """The class that keeps the messages of ``MESSAGE_STORAGE`` in the session
    and is read at every request: the storage itself, or the first part of a
    storage made of parts (as ``FallbackStorage`` is), which is always read."""
    name = settings.MESSAGE_STORAGE
    storage_class = import_string(name)
    parts = getattr(storage_class, "storage_classes", ())
    for candidate in (storage_class, *parts[:1]):
        if isinstance(candidate, type) and issubclass(candidate, SessionStorage):
            return candidate
    if any(issubclass(part, SessionStorage) for part in parts):
        # Django's FallbackStorage reads the session only when the messages
        # cookie ends with its "not finished" mark.
        why = (
            "reads the messages it keeps in the session only after its cookie "
            "overflowed, so a message added there from outside a request "
            "would not show"
        )
    else:
        why = "keeps no messages on the server, where they can be reached"
    raise ImproperlyConfigured(
        f"flash_user() adds the message to the user's stored sessions, and "
        f"MESSAGE_STORAGE {name!r} {why}. Use {_MESSAGES_IN_THE_SESSION}."
    )
