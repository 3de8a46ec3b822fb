"""The flash functions in Jinja2 templates, through Django's Jinja2 backend."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import messages
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.messages.storage.base import Message
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse
from django.template import engines
from django.test import Client, RequestFactory

from tests.settings import BASE_DIR

SHOW = "{% for m in found %}[{{ m.tags }}:{{ m }}]{% endfor %}"

HOW_TO_ADD = {
    "extension": {"extensions": ["django_prologue_sessions.jinja2.FlashExtension"]},
    "environment": {"environment": "django_prologue_sessions.jinja2.environment"},
}


@pytest.fixture(autouse=True, params=list(HOW_TO_ADD))
def jinja2_engine(request: pytest.FixtureRequest, settings: Any) -> None:
    """Django's Jinja2 backend as the ``jinja2`` engine, set up either way."""
    settings.TEMPLATES = [
        *settings.TEMPLATES,
        {
            "BACKEND": "django.template.backends.jinja2.Jinja2",
            "NAME": "jinja2",
            "DIRS": [BASE_DIR / "jinja2"],
            "OPTIONS": HOW_TO_ADD[request.param],
        },
    ]


def flash(client: Client, *pairs: tuple[str, str], safe: bool = False) -> None:
    response = client.post(
        "/flash/add/",
        {
            "level": [level for level, _ in pairs],
            "message": [message for _, message in pairs],
            **({"safe": "1"} if safe else {}),
        },
    )
    assert response.status_code == 302


def render(client: Client, template: str) -> str:
    response = client.get("/flash/render/", {"template": template, "using": "jinja2"})
    assert response.status_code == 200
    return response.content.decode()


def remaining(client: Client) -> list[str]:
    return [message for _, message, _ in client.get("/flash/get/").json()]


@pytest.fixture
def flashed(client: Client) -> Client:
    flash(
        client,
        ("info", "i1"),
        ("warning", "w"),
        ("error", "e1"),
        ("info", "i2"),
        ("error", "e2"),
    )
    return client


def test_template_file_reads_errors_then_the_rest(flashed: Client) -> None:
    page = flashed.get("/flash/template/errors_then_loop/", {"using": "jinja2"})
    assert page.content.decode() == (
        'errors:<li class="error">e1</li><li class="error">e2</li> rest:'
        '<li class="info">i1</li><li class="warning">w</li><li class="info">i2</li>'
    )
    assert remaining(flashed) == []


def test_get_flashed_by_level_takes_only_that_level(flashed: Client) -> None:
    template = '{% set found = get_flashed("error") %}' + SHOW
    assert render(flashed, template) == "[error:e1][error:e2]"
    assert remaining(flashed) == ["i1", "w", "i2"]


def test_several_levels_and_the_keyword(flashed: Client) -> None:
    template = '{% set found = get_flashed(["warning", 20]) %}' + SHOW
    assert render(flashed, template) == "[info:i1][warning:w][info:i2]"
    template = '{% set found = get_flashed(level="ERROR") %}' + SHOW
    assert render(flashed, template) == "[error:e1][error:e2]"
    assert remaining(flashed) == []


def test_pop_flashed_takes_the_oldest_of_a_level(flashed: Client) -> None:
    template = '{{ pop_flashed("error") }} {{ pop_flashed("debug") is none }}'
    assert render(flashed, template) == "e1 True"
    assert remaining(flashed) == ["i1", "w", "i2", "e2"]


def test_peek_flashed_consumes_nothing(flashed: Client) -> None:
    assert render(flashed, '{% set found = peek_flashed("info") %}' + SHOW) == (
        "[info:i1][info:i2]"
    )
    assert render(flashed, "{{ peek_flashed()|length }}") == "5"
    assert remaining(flashed) == ["i1", "w", "e1", "i2", "e2"]


def test_safe_html_stays_safe_and_the_rest_is_escaped(client: Client) -> None:
    flash(client, ("success", "<b>done</b>"), safe=True)
    flash(client, ("error", "<script>x</script>"))
    assert render(client, "{% set found = get_flashed() %}" + SHOW) == (
        "[success:<b>done</b>][error:&lt;script&gt;x&lt;/script&gt;]"
    )


def test_messages_are_djangos() -> None:
    request = RequestFactory().get("/")
    SessionMiddleware(lambda r: HttpResponse()).process_request(request)
    MessageMiddleware(lambda r: HttpResponse()).process_request(request)
    messages.warning(request, "w", extra_tags="urgent")
    template = engines["jinja2"].from_string(
        "{% set m = pop_flashed() %}"
        "{{ m.level }} {{ m.level_tag }} {{ m.tags }} {{ m == expected }}"
    )
    context = {"expected": Message(30, "w")}
    assert template.render(context, request=request) == "30 warning urgent warning True"
    assert len(messages.get_messages(request)) == 0


def test_without_a_request_the_error_says_how_to_render() -> None:
    template = engines["jinja2"].from_string("{{ get_flashed() }}")
    with pytest.raises(ImproperlyConfigured) as error:
        template.render({})
    assert str(error.value) == (
        "The flash functions of templates need the request: render the template "
        "with render(request, ...), which puts it in the context."
    )
