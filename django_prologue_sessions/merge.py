"""Merging a session that two requests changed at once, key by key.

The Redis and memory engines save a session only if it is still as this
request loaded it. When another request saved it meanwhile, the engine merges
the three versions of the session, ``before`` (as this request loaded it),
``mine`` (as this request leaves it) and ``theirs`` (as stored now), and saves
the result:

- a key that only this request changed (set or deleted) takes its change;
- a key that only the other request changed keeps the stored value;
- a key that both changed goes to the merge function registered for that key
  (``register()``), which returns the value to keep, or ``MISSING`` to delete
  it;
- a key that both changed, with no merge function, takes this request's
  change: the later save wins for that key.

The one merge function registered here is for ``"_messages"``, where Django's
``SessionStorage`` (and ``FallbackStorage``'s overflow) keeps the messages:
``merge_messages()``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, Final

__all__ = [
    "MISSING",
    "MergeFunction",
    "merge",
    "merge_function",
    "merge_messages",
    "register",
    "unregister",
]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final[Any] = _Missing()
"""A key absent from a version of the session (or to be deleted, as a result)."""

MergeFunction = Callable[[Any, Any, Any], Any]
"""``function(before, mine, theirs)``: the value to store, or ``MISSING``.

Each argument is the key's value in that version of the session, ``MISSING``
where the key is absent. It is called only when this request and another
changed the key, and must not change its arguments.
"""

_functions: dict[str, MergeFunction] = {}


def register(key: str, function: MergeFunction) -> None:
    """Merge the session key ``key`` with ``function`` when two requests change it."""
    _functions[key] = function


def unregister(key: str) -> None:
    """Give ``key`` back the default rule: this request's change wins."""
    _functions.pop(key, None)


def merge_function(key: str) -> MergeFunction | None:
    """The merge function registered for ``key``, if any."""
    return _functions.get(key)


def merge(
    before: Mapping[str, Any],
    mine: Mapping[str, Any],
    theirs: Mapping[str, Any],
    encode: Callable[[Any], Any],
) -> dict[str, Any]:
    """The session to store when ``theirs`` was saved since ``before`` was loaded.

    ``encode`` (the serializer's ``dumps``) tells whether two values differ:
    a value compares as it is stored (a tuple set as a list read back).
    """

    def changed(old: Any, new: Any) -> bool:
        if old is MISSING or new is MISSING:
            return old is not new
        return bool(encode(old) != encode(new))

    merged = dict(theirs)
    for key in [*mine, *(key for key in before if key not in mine)]:
        old, new = before.get(key, MISSING), mine.get(key, MISSING)
        if not changed(old, new):
            continue
        stored = theirs.get(key, MISSING)
        function = _functions.get(key)
        if function is not None and changed(old, stored):
            new = function(old, new, stored)
        if new is MISSING:
            merged.pop(key, None)
        else:
            merged[key] = new
    return merged


def merge_messages(before: Any, mine: Any, theirs: Any) -> Any:
    """Django's stored messages: those stored now (``theirs``), less those this
    request consumed, plus those it added (each counted as often as it occurs).

    A value that is not a list of messages as ``SessionStorage`` writes it
    (JSON text) is not merged: this request's value is kept.
    """
    try:
        old, new, stored = (_messages(value) for value in (before, mine, theirs))
    except ValueError:
        return mine
    consumed = _counts(old) - _counts(new)
    result = _less(stored, consumed) + _less(new, _counts(old))
    # As SessionStorage writes it: MessageEncoder's default separators, and
    # no key at all once no message is left.
    return json.dumps(result) if result else MISSING


def _messages(value: Any) -> list[Any]:
    if value is MISSING:
        return []
    if not isinstance(value, str):
        raise ValueError("not SessionStorage's JSON text")
    messages = json.loads(value)
    if not isinstance(messages, list):
        raise ValueError("not a list of messages")
    return messages


def _identity(message: Any) -> str:
    return json.dumps(message, separators=(",", ":"), sort_keys=True)


def _counts(messages: list[Any]) -> Counter[str]:
    return Counter(map(_identity, messages))


def _less(messages: list[Any], taken: Counter[str]) -> list[Any]:
    """``messages`` in order, less as many of each as ``taken`` counts."""
    taken = taken.copy()
    kept = []
    for message in messages:
        identity = _identity(message)
        if taken[identity]:
            taken[identity] -= 1
        else:
            kept.append(message)
    return kept


register("_messages", merge_messages)
