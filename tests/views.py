"""Tiny views that exercise a session through the real middleware."""

from __future__ import annotations

import json
import threading

from django.contrib.auth import (
    get_user,
    get_user_model,
    login,
    update_session_auth_hash,
)
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from django_prologue_sessions.flash import flash_user, get_flashed


def session_set(request: HttpRequest) -> HttpResponse:
    """Set every query parameter as a session key."""
    for key, value in request.GET.items():
        request.session[key] = value
    return HttpResponse("ok")


def session_get(request: HttpRequest) -> JsonResponse:
    """Return the whole session as JSON."""
    return JsonResponse(dict(request.session.items()))


def session_read(request: HttpRequest) -> HttpResponse:
    """Read one key without changing anything."""
    return HttpResponse(json.dumps(request.session.get("key")))


def session_untouched(request: HttpRequest) -> HttpResponse:
    return HttpResponse("untouched")


def session_flush(request: HttpRequest) -> HttpResponse:
    request.session.flush()
    return HttpResponse("flushed")


def session_cycle(request: HttpRequest) -> HttpResponse:
    request.session.cycle_key()
    return HttpResponse("cycled")


def session_expiry(request: HttpRequest) -> HttpResponse:
    request.session["key"] = "value"
    request.session.set_expiry(float(request.GET["seconds"]))
    return HttpResponse("ok")


# Two requests on one session, in two threads: the first loads it, waits
# until the test has ended the session elsewhere, then re-keys it as
# django.contrib.auth.update_session_auth_hash() does.
CYCLE_LOADED = threading.Event()
CYCLE_GO_ON = threading.Event()


def session_cycle_later(request: HttpRequest) -> HttpResponse:
    assert request.session.get("_auth_user_id") is not None  # loaded, logged in
    CYCLE_LOADED.set()
    CYCLE_GO_ON.wait(10)
    request.session.cycle_key()
    request.session["_auth_user_hash"] = "after a password change"
    return HttpResponse("cycled")


@csrf_exempt
def log_in(request: HttpRequest) -> HttpResponse:
    """Log in as the user named by POST ``username``, no password asked."""
    user = get_user_model().objects.get(username=request.POST["username"])
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return HttpResponse("logged in")


@csrf_exempt
def change_password(request: HttpRequest) -> HttpResponse:
    """Change the signed-in user's password as Django's own view does: the
    session is re-keyed and stays signed in."""
    user = request.user = get_user(request)  # as AuthenticationMiddleware does
    user.set_password(request.POST["password"])
    user.save()
    update_session_auth_hash(request, user)
    return HttpResponse("changed")


def whoami(request: HttpRequest) -> JsonResponse:
    """Who is signed in, and the messages pending (read, so consumed)."""
    from django.contrib.messages import get_messages

    user = request.user.get_username() if request.user.is_authenticated else None
    return JsonResponse(
        {"user": user, "messages": [str(m) for m in get_messages(request)]}
    )


async def awhoami(request: HttpRequest) -> JsonResponse:
    """``whoami`` on the async session API: the engines' ``aload()``."""
    from django.contrib.auth import aget_user

    user = await aget_user(request)
    messages = await request.session.aget("_messages")
    await request.session.apop("_messages", None)
    return JsonResponse(
        {
            "user": user.get_username() if user.is_authenticated else None,
            "messages": messages,
        }
    )


# Requests that load their session, wait while the test changes the stored
# session from elsewhere, then save their own change: the save meets a
# session that changed since it was loaded.
HELD = threading.Event()
LET_GO = threading.Event()


def _hold() -> None:
    HELD.set()
    LET_GO.wait(10)


def session_set_later(request: HttpRequest) -> HttpResponse:
    """``session_set()``, once the test lets it go on after the load."""
    request.session.get("_auth_user_id")  # loaded
    _hold()
    for key, value in request.GET.items():
        request.session[key] = value
    return HttpResponse("ok")


def messages_read_later(request: HttpRequest) -> JsonResponse:
    """Read (consume) every message, then wait until let go, and answer them."""
    texts = [str(message) for message in get_flashed(request)]
    _hold()
    return JsonResponse(texts, safe=False)


def flash_own_user(request: HttpRequest) -> JsonResponse:
    """Flash the signed-in user everywhere, this session included, while
    this request changes its session too."""
    request.session["cart"] = "book"
    return JsonResponse(
        flash_user(request.session["_auth_user_id"], "everywhere"), safe=False
    )
