"""``{% get_flashed "error" as errors %}`` and friends, over ``flash.py``.

Each tag takes levels as positional arguments or as ``level=``, the same as
the function of its name, and reads the request from the template context.
"""

from __future__ import annotations

from django import template
from django.contrib.messages.storage.base import Message
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest

# ``from ... import`` form: the package's attribute ``flash`` is the
# function, which shadows the module for ``import ... as``.
from django_prologue_sessions.flash import Level, Levels
from django_prologue_sessions.flash import get_flashed as api_get_flashed
from django_prologue_sessions.flash import peek_flashed as api_peek_flashed
from django_prologue_sessions.flash import pop_flashed as api_pop_flashed

register = template.Library()


@register.simple_tag(takes_context=True)
def get_flashed(
    context: template.Context, *levels: Level, level: Levels = None
) -> list[Message]:
    return api_get_flashed(_request(context), _levels(levels, level))


@register.simple_tag(takes_context=True)
def peek_flashed(
    context: template.Context, *levels: Level, level: Levels = None
) -> list[Message]:
    return api_peek_flashed(_request(context), _levels(levels, level))


@register.simple_tag(takes_context=True)
def pop_flashed(
    context: template.Context, *levels: Level, level: Levels = None
) -> Message | None:
    return api_pop_flashed(_request(context), _levels(levels, level))


def _request(context: template.Context) -> HttpRequest:
    request = getattr(context, "request", None) or context.get("request")
    if not isinstance(request, HttpRequest):
        raise ImproperlyConfigured(
            "The flash template tags need the request: render the template "
            "with render(request, ...) or a RequestContext."
        )
    return request


def _levels(levels: tuple[Level, ...], level: Levels) -> Levels:
    if levels and level is not None:
        raise template.TemplateSyntaxError(
            "Give the flash levels either as arguments or as level=, not both."
        )
    return levels or level
