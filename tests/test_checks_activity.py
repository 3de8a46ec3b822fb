"""System checks E050-E059: the settings of session activity recording."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.checks import run_checks
from django.test import override_settings

from django_prologue_sessions.conf import app_settings

WITH_MIDDLEWARE = [
    "django_prologue_sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_prologue_sessions.activity.ActivityMiddleware",
]


def activity_check_ids() -> list[str]:
    return [
        message.id
        for message in run_checks()
        if message.id and message.id.startswith("django_prologue_sessions.E05")
    ]


def test_defaults_pass() -> None:
    assert activity_check_ids() == []


def test_recording_on_with_its_middleware_passes() -> None:
    with override_settings(
        PROLOGUE_SESSIONS_ACTIVITY=True,
        PROLOGUE_SESSIONS_ACTIVITY_INTERVAL=60,
        PROLOGUE_SESSIONS_ACTIVITY_TRUNCATE_IP=True,
        PROLOGUE_SESSIONS_TRUSTED_PROXIES=["10.0.0.0/8", "2001:db8::1"],
        PROLOGUE_SESSIONS_PROXY_HEADER="HTTP_X_REAL_IP",
        MIDDLEWARE=WITH_MIDDLEWARE,
    ):
        assert activity_check_ids() == []
        assert app_settings.PROLOGUE_SESSIONS_ACTIVITY_INTERVAL == 60
        assert app_settings.PROLOGUE_SESSIONS_PROXY_HEADER == "HTTP_X_REAL_IP"


@pytest.mark.parametrize("value", [1, "yes", None])
def test_e050_recording_is_a_bool(value: Any) -> None:
    with override_settings(PROLOGUE_SESSIONS_ACTIVITY=value):
        assert activity_check_ids() == ["django_prologue_sessions.E050"]
        assert app_settings.PROLOGUE_SESSIONS_ACTIVITY is False


@pytest.mark.parametrize("value", [0, -5, "300", 300.0, True])
def test_e051_interval_is_a_positive_int(value: Any) -> None:
    with override_settings(PROLOGUE_SESSIONS_ACTIVITY_INTERVAL=value):
        assert activity_check_ids() == ["django_prologue_sessions.E051"]
        assert app_settings.PROLOGUE_SESSIONS_ACTIVITY_INTERVAL == 300


@pytest.mark.parametrize("value", [1, "no"])
def test_e052_truncation_is_a_bool(value: Any) -> None:
    with override_settings(PROLOGUE_SESSIONS_ACTIVITY_TRUNCATE_IP=value):
        assert activity_check_ids() == ["django_prologue_sessions.E052"]
        assert app_settings.PROLOGUE_SESSIONS_ACTIVITY_TRUNCATE_IP is False


@pytest.mark.parametrize(
    "value", ["10.0.0.0/8", ["10.0.0.0/33"], ["proxy.internal"], [10], None]
)
def test_e053_trusted_proxies_are_addresses_or_networks(value: Any) -> None:
    with override_settings(PROLOGUE_SESSIONS_TRUSTED_PROXIES=value):
        assert activity_check_ids() == ["django_prologue_sessions.E053"]


@pytest.mark.parametrize("value", ["X-Forwarded-For", "", 5])
def test_e054_the_proxy_header_is_a_meta_key(value: Any) -> None:
    with override_settings(PROLOGUE_SESSIONS_PROXY_HEADER=value):
        assert activity_check_ids() == ["django_prologue_sessions.E054"]
        assert app_settings.PROLOGUE_SESSIONS_PROXY_HEADER == "HTTP_X_FORWARDED_FOR"


def test_e055_recording_needs_the_middleware() -> None:
    with override_settings(PROLOGUE_SESSIONS_ACTIVITY=True):
        assert activity_check_ids() == ["django_prologue_sessions.E055"]
