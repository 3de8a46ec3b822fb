"""The flash functions for Jinja2 templates.

Add them to the environment of Django's Jinja2 backend, either with the
extension::

    "OPTIONS": {"extensions": ["django_prologue_sessions.jinja2.FlashExtension"]}

or by naming this module's environment (or calling ``add_extension()`` in
your own)::

    "OPTIONS": {"environment": "django_prologue_sessions.jinja2.environment"}

Templates then call ``get_flashed("error")``, ``peek_flashed()`` and
``pop_flashed("warning")`` with the arguments of the Python functions, less
the request, which they take from the template context.
"""

from __future__ import annotations

from typing import Any

from django.contrib.messages.storage.base import Message
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString
from jinja2 import Environment, pass_context
from jinja2.ext import Extension
from jinja2.runtime import Context

from django_prologue_sessions._template_request import request_from_context

# ``from ... import`` form: the package's attribute ``flash`` is the
# function, which shadows the module for ``import ... as``.
from django_prologue_sessions.flash import Levels
from django_prologue_sessions.flash import get_flashed as api_get_flashed
from django_prologue_sessions.flash import peek_flashed as api_peek_flashed
from django_prologue_sessions.flash import pop_flashed as api_pop_flashed


class FlashExtension(Extension):
    """Makes the flash functions globals of the environment."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.globals.update(
            get_flashed=get_flashed, peek_flashed=peek_flashed, pop_flashed=pop_flashed
        )


def environment(**options: Any) -> Environment:
    """A Jinja2 ``Environment`` with the flash functions."""
    env = Environment(**options)
    env.add_extension(FlashExtension)
    return env


class JinjaMessage(Message):
    """A message that Jinja2's autoescape renders as Django templates do.

    ``{{ message }}`` escapes the text unless it was marked safe; without
    ``__html__`` Jinja2 would escape marked-safe HTML too.
    """

    def __html__(self) -> SafeString:
        return conditional_escape(self.message)


@pass_context
def get_flashed(context: Context, level: Levels = None) -> list[JinjaMessage]:
    return _for_jinja(api_get_flashed(request_from_context(context), level))


@pass_context
def peek_flashed(context: Context, level: Levels = None) -> list[JinjaMessage]:
    return _for_jinja(api_peek_flashed(request_from_context(context), level))


@pass_context
def pop_flashed(context: Context, level: Levels = None) -> JinjaMessage | None:
    message = api_pop_flashed(request_from_context(context), level)
    return _for_jinja([message])[0] if message else None


def _for_jinja(messages: list[Message]) -> list[JinjaMessage]:
    return [JinjaMessage(m.level, m.message, m.extra_tags) for m in messages]
