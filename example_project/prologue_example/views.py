"""The example's pages.

Everything a visitor has lives in their session: the name they signed in
with, a visit counter, their posts and a draft. Every form answers with a
redirect (Post/Redirect/Get) and says how it went with a flash message.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.models import User
from django.contrib.messages import constants
from django.contrib.messages.storage.base import Message
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import (
    require_GET,
    require_http_methods,
    require_POST,
)

from django_prologue_sessions.flash import flash, get_flashed, peek_flashed
from prologue_example.engines import DESCRIPTIONS, engine_name

NAME = "name"
VISITS = "visits"
POSTS = "posts"
DRAFT = "draft"

LEVELS = ("debug", "info", "success", "warning", "error")
LEVEL_NUMBERS = {level: constants.DEFAULT_LEVELS[level.upper()] for level in LEVELS}
LEVEL_TEXTS = {
    "debug": "A debug message: the counter was read from the session.",
    "info": "An info message: the session engine is configurable.",
    "success": "A success message: the form was saved.",
    "warning": "A warning message: the session expires at some point.",
    "error": "An error message: something needs your attention.",
}

# With the signed-cookie engine the whole session must fit in one cookie of
# at most 4 kB, whatever a client sends: each thing kept is bounded. Flash
# messages are fixed texts, at most MAX_WAITING of them unread; posts and the
# draft are bounded by their size as the JSON session serializer writes them
# (a non-ASCII character takes six bytes there), not only by their number.
MAX_WAITING = 10
MAX_NAME = 20
MAX_TITLE = 40
MAX_BODY = 120
MAX_POSTS = 5
POSTS_BUDGET = 1000  # The newest post is kept even when larger (<= 1020).
DRAFT_BUDGET = 400

EXPIRY_CHOICES = {
    "default": None,
    "browser": 0,
    "minute": 60,
    "hour": 60 * 60,
}


class SignInForm(forms.Form):
    name = forms.CharField(
        max_length=MAX_NAME,
        error_messages={
            "required": "Please enter a name to sign in.",
            "max_length": "A name has at most %(limit_value)d characters "
            "(this one has %(show_value)d).",
        },
    )


class PostForm(forms.Form):
    title = forms.CharField(
        max_length=MAX_TITLE,
        error_messages={
            "required": "A post needs a title.",
            "max_length": "A title has at most %(limit_value)d characters "
            "(this one has %(show_value)d).",
        },
    )
    body = forms.CharField(
        max_length=MAX_BODY,
        error_messages={
            "required": "A post needs some text.",
            "max_length": "A post has at most %(limit_value)d characters "
            "(this one has %(show_value)d).",
        },
    )


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    visits = int(request.session.get(VISITS, 0)) + 1
    request.session[VISITS] = visits
    return _render(request, "example/home.html", "home", visits=visits)


@require_POST
def sign_in(request: HttpRequest) -> HttpResponse:
    form = SignInForm(request.POST)
    if not form.is_valid():
        _flash_errors(request, form)
        return redirect("home")
    # One account per name, no password: this is a demonstration. login()
    # gives the session a new key, against session fixation.
    user, _ = User.objects.get_or_create(username=form.cleaned_data["name"])
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    request.session[NAME] = form.cleaned_data["name"]
    _flash(request, "Welcome! You are signed in.", "success")
    return redirect("home")


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    signed_in = NAME in request.session
    # Deletes the session from the store and gives the visitor a new, empty
    # one, which then holds only the goodbye message.
    request.session.flush()
    if signed_in:
        _flash(request, "Goodbye! Your session was deleted.", "info")
    else:
        _flash(request, "You were not signed in.", "warning")
    return redirect("home")


@require_http_methods(["GET", "POST"])
def posts(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _publish(request)
    draft = request.session.pop(DRAFT, {})
    return _render(
        request,
        "example/posts.html",
        "posts",
        posts=request.session.get(POSTS, []),
        draft=draft,
    )


def _publish(request: HttpRequest) -> HttpResponse:
    if not request.session.get(NAME):
        _flash(request, "Sign in first to write a post.", "warning")
        return redirect("home")
    form = PostForm(request.POST)
    if not form.is_valid():
        draft = {
            "title": request.POST.get("title", "")[:MAX_TITLE],
            "body": request.POST.get("body", "")[:MAX_BODY],
        }
        if _json_size(draft) <= DRAFT_BUDGET:
            request.session[DRAFT] = draft
        _flash_errors(request, form)
        return redirect("posts")
    post = {
        "title": form.cleaned_data["title"],
        "body": form.cleaned_data["body"],
        "published": timezone.now().strftime("%Y-%m-%d %H:%M UTC"),
    }
    # The newest post is always kept; older ones while they fit.
    kept = [post]
    for older in request.session.get(POSTS, [])[: MAX_POSTS - 1]:
        if _json_size([*kept, older]) > POSTS_BUDGET:
            break
        kept.append(older)
    request.session[POSTS] = kept
    _flash(request, "Your post was published.", "success")
    return redirect("posts")


@require_GET
def session_details(request: HttpRequest) -> HttpResponse:
    session = request.session
    key = session.session_key or ""
    return _render(
        request,
        "example/session.html",
        "session",
        session_key=key if len(key) <= 48 else f"{key[:40]}…",
        session_key_length=len(key),
        contents=[
            (name, json.dumps(value, ensure_ascii=False, default=repr))
            for name, value in sorted(session.items())
        ],
        expiry_age=session.get_expiry_age(),
        expiry_date=session.get_expiry_date(),
        at_browser_close=session.get_expire_at_browser_close(),
        expiry_choices=EXPIRY_CHOICES,
    )


@require_POST
def set_expiry(request: HttpRequest) -> HttpResponse:
    choice = request.POST.get("expiry", "")
    if choice not in EXPIRY_CHOICES:
        _flash(request, "Pick one of the expiry choices.", "error")
        return redirect("session")
    request.session.set_expiry(EXPIRY_CHOICES[choice])
    if request.session.get_expire_at_browser_close():
        _flash(request, "Your session now ends when you close the browser.", "success")
    else:
        age = request.session.get_expiry_age()
        _flash(request, f"Your session now expires after {age} seconds.", "success")
    return redirect("session")


@require_GET
def levels(request: HttpRequest) -> HttpResponse:
    show = request.GET.get("show", "")
    shown: list[Message] = []
    if show == "all":
        shown = get_flashed(request)
    elif show in LEVELS:
        shown = get_flashed(request, show)
    else:
        show = ""
    waiting = peek_flashed(request)
    counts = [
        (level, sum(m.level == LEVEL_NUMBERS[level] for m in waiting))
        for level in LEVELS
    ]
    return _render(
        request,
        "example/levels.html",
        "levels",
        show=show,
        shown=shown,
        waiting=waiting,
        counts=counts,
        levels=LEVELS,
        full=request.GET.get("full") == "1",
    )


@require_POST
def flash_levels(request: HttpRequest) -> HttpResponse:
    chosen = [level for level in LEVELS if level in request.POST.getlist("level")]
    if len(peek_flashed(request)) + len(chosen) > MAX_WAITING:
        return redirect(f"{reverse('levels')}?full=1")
    for level in chosen:
        flash(request, LEVEL_TEXTS[level], level)
    return redirect("levels")


def _render(
    request: HttpRequest, template: str, page: str, **context: Any
) -> HttpResponse:
    return render(request, template, {"page": page, **context})


def site(request: HttpRequest) -> dict[str, Any]:
    """A context processor: what the layout shows on every page, the pages
    of ``django_prologue_sessions.urls`` included."""
    engine = engine_name(settings.SESSION_ENGINE)
    return {
        "name": request.session.get(NAME, ""),
        "engine": engine,
        "engine_path": settings.SESSION_ENGINE,
        "engine_description": DESCRIPTIONS.get(engine, ""),
        "sessions_page": getattr(settings, "SESSIONS_PAGE", False),
    }


def _flash(request: HttpRequest, message: str, level: str) -> None:
    """Flash ``message`` unless MAX_WAITING messages are still unread.

    Every page but the levels page shows (and so reads) all of them, so a
    browser never comes near; the bound holds for any other client too.
    """
    if len(peek_flashed(request)) < MAX_WAITING:
        flash(request, message, level)


def _flash_errors(request: HttpRequest, form: forms.Form) -> None:
    for errors in form.errors.values():
        for error in errors:
            _flash(request, str(error), "error")


def _json_size(value: object) -> int:
    """The size of ``value`` as Django's JSON session serializer writes it."""
    return len(json.dumps(value, separators=(",", ":")))
