"""``{% get_flashed "error" as errors %}`` and friends, over ``flash.py``.

Each tag takes levels as positional arguments or as ``level=``, the same as
the function of its name, and reads the request from the template context.
Each must end with ``as <name>``; without it the template does not compile.
"""

from __future__ import annotations

from collections.abc import Callable

from django import template
from django.contrib.messages.storage.base import Message
from django.template.base import Node, Parser, Token

from django_prologue_sessions._template_request import request_from_context

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
    return api_get_flashed(request_from_context(context), _levels(levels, level))


@register.simple_tag(takes_context=True)
def peek_flashed(
    context: template.Context, *levels: Level, level: Levels = None
) -> list[Message]:
    return api_peek_flashed(request_from_context(context), _levels(levels, level))


@register.simple_tag(takes_context=True)
def pop_flashed(
    context: template.Context, *levels: Level, level: Levels = None
) -> Message | None:
    return api_pop_flashed(request_from_context(context), _levels(levels, level))


def _levels(levels: tuple[Level, ...], level: Levels) -> Levels:
    if levels and level is not None:
        raise template.TemplateSyntaxError(
            "Give the flash levels either as arguments or as level=, not both."
        )
    return levels or level


def _assignment_only(name: str, example: str) -> None:
    """Make ``{% name ... %}`` without ``as <name>`` fail when compiled.

    Printed in place, the messages would show as a Python list, and be used
    up all the same.
    """
    compile_simple_tag: Callable[[Parser, Token], Node] = register.tags[name]

    def compile_tag(parser: Parser, token: Token) -> Node:
        bits = token.split_contents()
        if bits[-1] == "as":
            raise template.TemplateSyntaxError(
                f"'{name}' has 'as' but no variable name after it: write {example}."
            )
        if len(bits) < 3 or bits[-2] != "as":
            raise template.TemplateSyntaxError(
                f"'{name}' must end with 'as' and a variable name, as in "
                f"{example}, then show the variable: printed in place the "
                "messages would show as a Python list."
            )
        return compile_simple_tag(parser, token)

    register.tags[name] = compile_tag


_assignment_only("get_flashed", '{% get_flashed "error" as errors %}')
_assignment_only("peek_flashed", '{% peek_flashed "error" as errors %}')
_assignment_only("pop_flashed", '{% pop_flashed "info" as message %}')
