from __future__ import annotations

from django.urls import include, path

from prologue_example import views

urlpatterns = [
    path("", views.home, name="home"),
    path("sign-in/", views.sign_in, name="sign_in"),
    path("sign-out/", views.sign_out, name="sign_out"),
    path("posts/", views.posts, name="posts"),
    path("session/", views.session_details, name="session"),
    path("session/expiry/", views.set_expiry, name="set_expiry"),
    path("levels/", views.levels, name="levels"),
    path("levels/flash/", views.flash_levels, name="flash_levels"),
    path("account/sessions/", include("django_prologue_sessions.urls")),
]
