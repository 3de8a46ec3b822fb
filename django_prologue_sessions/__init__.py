"""Session engines and level-filtered flash messages for Django."""

from __future__ import annotations

from typing import Any

__all__ = ["flash", "get_flashed", "peek_flashed", "pop_flashed"]


def __getattr__(name: str) -> Any:
    # The flash API is importable from the package root, but importing it
    # eagerly would pull django.contrib.messages into every ``import`` of an
    # engine module (and before settings are configured).
    if name in __all__:
        from django_prologue_sessions import flash as flash_module

        return getattr(flash_module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
