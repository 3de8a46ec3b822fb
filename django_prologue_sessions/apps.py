from __future__ import annotations

from django.apps import AppConfig
from django.core import checks


class PrologueSessionsConfig(AppConfig):
    name = "django_prologue_sessions"
    verbose_name = "Prologue sessions"

    def ready(self) -> None:
        from django_prologue_sessions import checks as app_checks

        checks.register(app_checks.check_settings)
