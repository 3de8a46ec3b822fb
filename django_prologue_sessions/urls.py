"""``path("account/sessions/", include("django_prologue_sessions.urls"))``.

Names, in the ``prologue_sessions`` namespace: ``list`` (GET), ``revoke``
(POST ``session``: the id the list gives it) and ``revoke_others`` (POST).
"""

from __future__ import annotations

from django.urls import path

from django_prologue_sessions import views

app_name = "prologue_sessions"

urlpatterns = [
    path("", views.SessionListView.as_view(), name="list"),
    path("end/", views.SessionRevokeView.as_view(), name="revoke"),
    path("end-others/", views.SessionRevokeOthersView.as_view(), name="revoke_others"),
]
