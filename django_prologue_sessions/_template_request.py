"""The request of a template's context, for the flash tags and Jinja2 functions."""

from __future__ import annotations

from typing import Any, Protocol

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest


class TemplateContext(Protocol):
    """Django's ``Context`` and Jinja2's ``Context`` alike."""

    def get(self, key: str, /) -> Any: ...


def request_from_context(context: TemplateContext) -> HttpRequest:
    """The request that ``render(request, ...)`` put in ``context``.

    Django's ``RequestContext`` carries it as an attribute, and the ``request``
    context processor (or Django's Jinja2 backend) as the variable ``request``.
    """
    request = getattr(context, "request", None) or context.get("request")
    if not isinstance(request, HttpRequest):
        raise ImproperlyConfigured(
            "The flash functions of templates need the request: render the "
            "template with render(request, ...), which puts it in the context."
        )
    return request
