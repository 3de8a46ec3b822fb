"""System checks of the expiry settings (ids E080-E089)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.checks import Error
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from django_prologue_sessions.checks import _check_expiry_settings
from django_prologue_sessions.conf import app_settings

SETTINGS = [
    ("PROLOGUE_SESSIONS_IDLE_TIMEOUT", "django_prologue_sessions.E080"),
    ("PROLOGUE_SESSIONS_ABSOLUTE_TIMEOUT", "django_prologue_sessions.E081"),
    ("PROLOGUE_SESSIONS_ANONYMOUS_AGE", "django_prologue_sessions.E082"),
]


@pytest.mark.parametrize(("name", "id_"), SETTINGS)
def test_off_by_default(name: str, id_: str) -> None:
    assert _check_expiry_settings() == []
    assert getattr(app_settings, name) is None


@pytest.mark.parametrize(("name", "id_"), SETTINGS)
@pytest.mark.parametrize("value", [None, 1, 1800, 10**9])
def test_seconds_or_none_pass(name: str, id_: str, value: int | None) -> None:
    with override_settings(**{name: value}):
        assert _check_expiry_settings() == []
        assert getattr(app_settings, name) == value


@pytest.mark.parametrize(("name", "id_"), SETTINGS)
@pytest.mark.parametrize(
    "value", [0, -1, True, False, 1.5, 1800.0, "1800", [1800], {"minutes": 30}]
)
def test_anything_else_is_an_error_and_counts_as_off(
    name: str, id_: str, value: Any
) -> None:
    with override_settings(**{name: value}):
        errors = _check_expiry_settings()
        assert [error.id for error in errors] == [id_]
        assert isinstance(errors[0], Error)
        assert name in errors[0].msg
        assert repr(value) in (errors[0].hint or "")
        assert getattr(app_settings, name) is None


@pytest.mark.parametrize(("name", "id_"), SETTINGS)
def test_registered_with_the_check_framework(name: str, id_: str) -> None:
    with (
        override_settings(**{name: "half an hour"}),
        pytest.raises(SystemCheckError, match=rf"\({id_}\)"),
    ):
        call_command("check")
