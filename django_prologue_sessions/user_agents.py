"""A user agent as a person reads it: "Firefox on Linux", "Safari on iPhone".

The parsing is ua-parser's (``pip install "django-prologue-sessions[ua]"``),
the Python port of the uap-core rules that several languages share. Without
it, or for a user agent it does not recognise, the raw user agent is shown.
Parsing happens only when a page or the shell shows a session, never on a
request that records one.
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["describe", "parser_available"]

#: What ua-parser calls what it did not recognise.
_UNKNOWN = {"", "Other", "Generic Smartphone", "Generic Feature Phone"}
#: Devices that tell more than their OS does.
_NAMED_DEVICES = {"iPhone", "iPad", "iPod"}


def parser_available() -> bool:
    """Whether ua-parser is installed."""
    return _parse() is not None


def describe(user_agent: str) -> str:
    """ "<browser> on <device or OS>", or ``user_agent`` itself if not parsed."""
    if not user_agent:
        return ""
    return _describe(user_agent)


@functools.lru_cache(maxsize=256)
def _describe(user_agent: str) -> str:
    parse = _parse()
    if parse is None:
        return user_agent
    try:
        result = parse(user_agent)
    except Exception:  # a parser bug must not break the page
        return user_agent
    # "Mobile Safari on iPhone" says "mobile" twice.
    browser = " ".join(
        word
        for word in _family(getattr(result, "user_agent", None)).split()
        if word != "Mobile"
    )
    system = _family(getattr(result, "os", None))
    device = _family(getattr(result, "device", None))
    where = device if device in _NAMED_DEVICES else system
    if browser and where:
        return f"{browser} on {where}"
    return browser or where or user_agent


def _family(part: Any) -> str:
    family = getattr(part, "family", None)
    if not isinstance(family, str) or family in _UNKNOWN:
        return ""
    return family


@functools.cache
def _parse() -> Any:
    try:
        import ua_parser
    except ImportError:
        return None
    return getattr(ua_parser, "parse", None)
