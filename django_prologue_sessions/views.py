"""Pages where a user sees where they are signed in and ends sessions.

    path("account/sessions/", include("django_prologue_sessions.urls"))

``SessionListView`` lists the user's sessions, this one marked;
``SessionRevokeView`` (POST ``session``, its id) ends one of them and
``SessionRevokeOthersView`` (POST) all but this one. Each needs a logged-in
user (``LoginRequiredMixin``: others go to ``LOGIN_URL``) and acts on that
user's sessions only, through ``user_sessions``: a key that is not one of
theirs ends nothing and gets the same answer as a session that has already
ended. Ending this very session is a logout. CSRF protection is Django's
``CsrfViewMiddleware``'s.

After ending sessions the views redirect to the list, which shows what was
done once (a message of ``django.contrib.messages`` that the list takes,
whatever the template, so it never turns up later on another page). With an
engine that cannot list sessions (the signed-cookie engine), the list
explains so and the end views only redirect to it: never a 500.

A session key is a credential: the pages never show one. Each session is
named by ``session_id()``, an HMAC of its key under ``SECRET_KEY``, and the
end view finds the user's session of that id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.mixins import LoginRequiredMixin
from django.contrib.messages.storage.base import Message
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import resolve_url
from django.urls import reverse
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.generic import TemplateView, View

from django_prologue_sessions.exceptions import UserSessionsUnsupported
from django_prologue_sessions.flash import _storage, _take
from django_prologue_sessions.user_agents import describe
from django_prologue_sessions.user_sessions import (
    UserSession,
    list_sessions,
    revoke_all,
    revoke_session,
)

__all__ = [
    "SessionListView",
    "SessionRevokeOthersView",
    "SessionRevokeView",
    "session_id",
]

_ID_SALT = "django_prologue_sessions.views.session_id"
ID_LENGTH = 32
#: The ``extra_tags`` of the messages the end views add for the list.
MESSAGE_TAG = "prologue-sessions"


def session_id(session_key: str) -> str:
    """The name of a session in pages and forms: it does not reveal the key."""
    digest = salted_hmac(_ID_SALT, session_key, algorithm="sha256").hexdigest()
    return digest[:ID_LENGTH]


@dataclass(frozen=True)
class SessionRow:
    """A session as the list page shows it."""

    session: UserSession
    #: ``session_id()`` of its key, what the end form posts.
    id: str
    is_current: bool
    #: The user agent last seen, described ("Firefox on Linux"), or raw.
    device: str


class SessionListView(LoginRequiredMixin, TemplateView):
    """The user's live sessions, this one first, then most recently seen.

    With an engine that cannot list them, ``unsupported_template_name``
    says why instead.
    """

    template_name = "django_prologue_sessions/session_list.html"
    unsupported_template_name = "django_prologue_sessions/unsupported.html"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return super().get(request, *args, **kwargs)
        except UserSessionsUnsupported as exc:
            context = super().get_context_data(**kwargs)
            # What to change is for the developer's eyes only.
            context["reason"] = str(exc) if settings.DEBUG else ""
            return self.response_class(
                request=request,
                template=[self.unsupported_template_name],
                context=context,
                using=self.template_engine,
            )

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["confirmations"] = take_confirmations(self.request)
        current = self.request.session.session_key
        rows = [
            SessionRow(
                session=session,
                id=session_id(session.session_key),
                is_current=session.session_key == current,
                device=describe(session.activity.last.user_agent)
                if session.activity is not None
                else "",
            )
            for session in list_sessions(self.request.user)  # type: ignore[arg-type]
        ]
        rows.sort(key=lambda row: not row.is_current)  # stable: then by last seen
        context["sessions"] = rows
        context["others"] = sum(not row.is_current for row in rows)
        return context


def take_confirmations(request: HttpRequest) -> list[Message]:
    """The messages the end views left for the list, taken (consumed): no
    other message is touched."""
    if getattr(request, "_messages", None) is None:  # no MessageMiddleware
        return []
    return _take(
        _storage(request),
        lambda message: MESSAGE_TAG in message.extra_tags.split(),
    )


class _RevokeView(LoginRequiredMixin, View):
    """A POST that ends sessions, then back to the list (Post/Redirect/Get)."""

    http_method_names = ["post"]
    #: Where to go afterwards; the list page by default.
    success_url: str | None = None

    def dispatch(
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> HttpResponseBase:
        try:
            return super().dispatch(request, *args, **kwargs)
        except UserSessionsUnsupported:
            # Nothing can be ended: the list says why.
            return HttpResponseRedirect(self.get_success_url())

    def get_success_url(self) -> str:
        if self.success_url is not None:
            return str(resolve_url(self.success_url))
        match = self.request.resolver_match
        return reverse(
            "prologue_sessions:list", current_app=match.namespace if match else None
        )

    def done(self, message: str) -> HttpResponse:
        messages.info(self.request, message, MESSAGE_TAG, fail_silently=True)
        return HttpResponseRedirect(self.get_success_url())


class SessionRevokeView(_RevokeView):
    """End the session whose ``session_id()`` is POSTed as ``session``."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        wanted = request.POST.get("session", "")
        key = None
        if isinstance(wanted, str) and len(wanted) == ID_LENGTH:
            for session in list_sessions(request.user):  # type: ignore[arg-type]
                if constant_time_compare(session_id(session.session_key), wanted):
                    key = session.session_key
        if key is not None and key == request.session.session_key:
            url = self.get_success_url()
            logout(request)
            return HttpResponseRedirect(url)
        if key is not None and revoke_session(request.user, key):  # type: ignore[arg-type]
            return self.done(_("The session was ended."))
        # Not one of this user's sessions, or no longer: the same answer.
        return self.done(_("That session has already ended."))


class SessionRevokeOthersView(_RevokeView):
    """End every session of the user but this one."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        keep = request.session.session_key
        count = revoke_all(request.user, keep=keep)  # type: ignore[arg-type]
        if count == 0:
            return self.done(_("No other session was signed in."))
        return self.done(
            ngettext(
                "Signed out of %(count)d other session.",
                "Signed out of %(count)d other sessions.",
                count,
            )
            % {"count": count}
        )
