"""Session engines and level-filtered flash messages for Django."""

# The flash API is importable from the package root. Importing it binds the
# name ``flash`` here to the function, over the submodule of the same name
# (``import django_prologue_sessions.flash`` still finds the module).
# flash.py reads no setting at import time, so this is safe before
# settings are configured.
from django_prologue_sessions.flash import (
    aflash,
    aflash_user,
    aget_flashed,
    apeek_flashed,
    apop_flashed,
    flash,
    flash_user,
    get_flashed,
    peek_flashed,
    pop_flashed,
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
]
