"""A session middleware that saves with ``asave()`` under ASGI.

``SessionMiddleware`` is Django's, with an async path of its own. Under WSGI
(a sync ``get_response``) it is Django's middleware unchanged. Under ASGI,
Django's ``MiddlewareMixin`` would run ``process_request`` and
``process_response`` in ``sync_to_async``, a thread hop each, and save with the
engine's sync ``save()``; here ``__acall__`` runs the same steps on the event
loop: ``process_request`` (it only makes the store, no I/O), then
``aprocess_response``, which asks the session for its expiry and saves it
through the engine's async methods.

``aprocess_response`` mirrors Django's ``process_response`` line for line with
the async methods in place of the sync ones. It cannot call Django's: that
saves in the middle, between reading the expiry and setting the cookie of the
key the save may have made. Django's own ``SessionMiddlewareTests`` run against
both paths (``tests/test_middleware.py``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import cast

from django.conf import settings
from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.exceptions import SessionInterrupted
from django.contrib.sessions.middleware import (
    SessionMiddleware as DjangoSessionMiddleware,
)
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.utils.cache import patch_vary_headers
from django.utils.http import http_date

__all__ = ["SessionMiddleware"]

AsyncGetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


class SessionMiddleware(DjangoSessionMiddleware):
    """Django's ``SessionMiddleware``, saving with ``asave()`` under ASGI."""

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        # MiddlewareMixin.__call__ comes here when get_response is async.
        self.process_request(request)
        response = await cast(AsyncGetResponse, self.get_response)(request)
        return await self.aprocess_response(request, response)

    async def aprocess_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        """``process_response()`` through the session's async methods.

        Whether the session was accessed, modified or is empty is known
        without I/O; its expiry is read with ``aget_expire_at_browser_close()``
        and ``aget_expiry_age()`` (they load it through ``aload()`` if it was
        not loaded yet) and it is saved with ``asave()``.
        """
        try:
            session = request.session
            accessed = session.accessed
            modified = session.modified
            empty = session.is_empty()
        except AttributeError:
            return response
        # The cookie of a session emptied (flushed) in this request goes.
        if settings.SESSION_COOKIE_NAME in request.COOKIES and empty:
            response.delete_cookie(
                settings.SESSION_COOKIE_NAME,
                path=settings.SESSION_COOKIE_PATH,
                domain=settings.SESSION_COOKIE_DOMAIN,
                samesite=settings.SESSION_COOKIE_SAMESITE,
            )
            need_vary_cookie = True
        else:
            # An accessed session is varied on, saved or not.
            need_vary_cookie = accessed
            if (modified or settings.SESSION_SAVE_EVERY_REQUEST) and not empty:
                if await session.aget_expire_at_browser_close():
                    max_age = None
                    expires = None
                else:
                    max_age = await session.aget_expiry_age()
                    expires = http_date(time.time() + max_age)
                # No save for a 5xx response.
                if response.status_code < 500:
                    try:
                        await session.asave()
                    except UpdateError as error:
                        raise SessionInterrupted(
                            "The request's session was deleted before the "
                            "request completed. The user may have logged "
                            "out in a concurrent request, for example."
                        ) from error
                    response.set_cookie(
                        settings.SESSION_COOKIE_NAME,
                        # A str once saved, as for Django's middleware.
                        cast(str, session.session_key),
                        max_age=max_age,
                        expires=expires,
                        domain=settings.SESSION_COOKIE_DOMAIN,
                        path=settings.SESSION_COOKIE_PATH,
                        # Django passes these "or None": falsy is the same.
                        secure=settings.SESSION_COOKIE_SECURE,
                        httponly=settings.SESSION_COOKIE_HTTPONLY,
                        samesite=settings.SESSION_COOKIE_SAMESITE,
                    )
                    need_vary_cookie = True
        if need_vary_cookie:
            patch_vary_headers(response, ("Cookie",))
        return response
