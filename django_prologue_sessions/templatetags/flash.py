"""``{% get_flashed "error" as errors %}`` and friends, over ``flash.py``.

Each tag takes levels as positional arguments or as ``level=``, the same as
the function of its name, and reads the request from the template context.
"""

from __future__ import annotations

from django import template
from django.contrib.messages.storage.base import Message
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest

import django_prologue_sessions.flash as flash_api
from django_prologue_sessions.flash import Level, Levels

register = template.Library()


@register.simple_tag(takes_context=True)
def get_flashed(
    context: template.Context, *levels: Level, level: Levels = None
) -> list[Message]:
    return flash_api.get_flashed(_request(context), _levels(levels, level))


@register.simple_tag(takes_context=True)
def peek_flashed(
    context: template.Context, *levels: Level, level: Levels = None
) -> list[Message]:
    return flash_api.peek_flashed(_request(context), _levels(levels, level))


@register.simple_tag(takes_context=True)
def pop_flashed(
    context: template.Context, *levels: Level, level: Levels = None
) -> Message | None:
    return flash_api.pop_flashed(_request(context), _levels(levels, level))


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
