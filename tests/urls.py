"""URLs the middleware-level tests drive through Django's test client.

Tests that need views of their own add them here under their own prefix.
"""

from __future__ import annotations

from django.urls import include, path

from tests import views

urlpatterns = [
    path("session/set/", views.session_set),
    path("session/get/", views.session_get),
    path("session/untouched/", views.session_untouched),
    path("session/read/", views.session_read),
    path("session/flush/", views.session_flush),
    path("session/cycle/", views.session_cycle),
    path("session/expiry/", views.session_expiry),
    path("session/cycle-later/", views.session_cycle_later),
    path("session/set-later/", views.session_set_later),
    path("messages/read-later/", views.messages_read_later),
    path("messages/flash-own-user/", views.flash_own_user),
    path("flash/", include("tests.flash_views")),
    path("account/login/", views.log_in),
    path("account/password/", views.change_password),
    path("account/whoami/", views.whoami),
    path("account/awhoami/", views.awhoami),
    path("account/sessions/", include("django_prologue_sessions.urls")),
]
