from __future__ import annotations

from django.apps import AppConfig
from django.core import checks


class PrologueSessionsConfig(AppConfig):
    name = "django_prologue_sessions"
    verbose_name = "Prologue sessions"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from django_prologue_sessions import activity
        from django_prologue_sessions import checks as app_checks

        checks.register(app_checks.check_settings)
        checks.register(app_checks.check_sessions_pages, checks.Tags.urls)
        user_logged_in.connect(
            activity.record_login, dispatch_uid="django_prologue_sessions.activity"
        )
