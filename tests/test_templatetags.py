"""The ``{% load flash %}`` tags, rendered from template strings via real requests."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.template import Context, Template, TemplateSyntaxError
from django.test import Client

LOAD = "{% load flash %}"
SHOW = "{% for m in found %}[{{ m.tags }}:{{ m }}]{% endfor %}"


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
    response = client.get("/flash/render/", {"template": LOAD + template})
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


def test_get_flashed_takes_all(flashed: Client) -> None:
    assert render(flashed, "{% get_flashed as found %}" + SHOW) == (
        "[info:i1][warning:w][error:e1][info:i2][error:e2]"
    )
    assert render(flashed, "{% get_flashed as found %}" + SHOW) == ""


def test_get_flashed_by_level_takes_only_that_level(flashed: Client) -> None:
    assert render(flashed, '{% get_flashed "error" as found %}' + SHOW) == (
        "[error:e1][error:e2]"
    )
    assert remaining(flashed) == ["i1", "w", "i2"]


def test_level_as_keyword(flashed: Client) -> None:
    assert render(flashed, '{% get_flashed level="warning" as found %}' + SHOW) == (
        "[warning:w]"
    )
    assert remaining(flashed) == ["i1", "e1", "i2", "e2"]


def test_several_levels_and_integers(flashed: Client) -> None:
    template = '{% get_flashed "warning" 40 as found %}' + SHOW
    assert render(flashed, template) == "[warning:w][error:e1][error:e2]"
    assert remaining(flashed) == ["i1", "i2"]


def test_level_from_a_variable(flashed: Client) -> None:
    template = '{% with wanted="INFO" %}{% get_flashed wanted as found %}'
    assert render(flashed, template + SHOW + "{% endwith %}") == "[info:i1][info:i2]"


def test_pop_flashed_takes_the_oldest_of_a_level(flashed: Client) -> None:
    template = (
        '{% pop_flashed "error" as e %}{{ e }} {{ e.level }}'
        '{% pop_flashed "debug" as d %} {{ d|default_if_none:"none" }}'
    )
    assert render(flashed, template) == "e1 40 none"
    assert remaining(flashed) == ["i1", "w", "i2", "e2"]


def test_peek_flashed_consumes_nothing(flashed: Client) -> None:
    template = '{% peek_flashed "info" as found %}' + SHOW
    assert render(flashed, template) == "[info:i1][info:i2]"
    assert render(flashed, "{% peek_flashed as found %}{{ found|length }}") == "5"
    assert remaining(flashed) == ["i1", "w", "e1", "i2", "e2"]


def test_the_messages_loop_after_the_tag_shows_the_rest(flashed: Client) -> None:
    template = (
        '{% get_flashed "error" "warning" as found %}' + SHOW + " rest:"
        "{% for message in messages %}[{{ message }}]{% endfor %}"
    )
    assert render(flashed, template) == "[warning:w][error:e1][error:e2] rest:[i1][i2]"
    assert remaining(flashed) == []


def test_safe_html_stays_safe_and_the_rest_is_escaped(client: Client) -> None:
    flash(client, ("success", "<b>done</b>"), safe=True)
    flash(client, ("error", "<script>x</script>"))
    assert render(client, "{% get_flashed as found %}" + SHOW) == (
        "[success:<b>done</b>][error:&lt;script&gt;x&lt;/script&gt;]"
    )


def test_arguments_and_keyword_together_are_a_syntax_error(flashed: Client) -> None:
    with pytest.raises(TemplateSyntaxError, match="either as arguments or as level="):
        render(flashed, '{% get_flashed "error" level="info" as found %}')
    assert len(remaining(flashed)) == 5


def test_unknown_level_is_a_value_error(flashed: Client) -> None:
    with pytest.raises(ValueError, match="Unknown message level name 'eror'"):
        render(flashed, '{% get_flashed "eror" as found %}')
    assert len(remaining(flashed)) == 5


def test_without_a_request_the_error_says_how_to_render() -> None:
    template = Template(LOAD + "{% get_flashed as found %}")
    with pytest.raises(ImproperlyConfigured) as error:
        template.render(Context())
    assert str(error.value) == (
        "The flash functions of templates need the request: render the template "
        "with render(request, ...), which puts it in the context."
    )


@pytest.mark.parametrize(
    ("tag", "example"),
    [
        ('{% get_flashed "error" %}', '{% get_flashed "error" as errors %}'),
        ("{% get_flashed %}", '{% get_flashed "error" as errors %}'),
        ('{% peek_flashed "error" level %}', '{% peek_flashed "error" as errors %}'),
        ('{% pop_flashed "info" as found x %}', '{% pop_flashed "info" as message %}'),
    ],
)
def test_a_tag_without_as_fails_to_compile(
    flashed: Client, tag: str, example: str
) -> None:
    name = tag.split()[1]
    with pytest.raises(TemplateSyntaxError) as error:
        Template(LOAD + tag)
    assert str(error.value) == (
        f"'{name}' must end with 'as' and a variable name, as in {example}, "
        "then show the variable: printed in place the messages would show as a "
        "Python list."
    )
    # Through a request, too: the page fails, and no message is used up.
    with pytest.raises(TemplateSyntaxError):
        render(flashed, tag)
    assert len(remaining(flashed)) == 5


@pytest.mark.parametrize(
    "tag",
    ['{% get_flashed "error" as %}', "{% peek_flashed as %}", "{% pop_flashed as %}"],
)
def test_as_without_a_name_fails_to_compile(flashed: Client, tag: str) -> None:
    name = tag.split()[1]
    with pytest.raises(
        TemplateSyntaxError, match=f"^'{name}' has 'as' but no variable"
    ):
        Template(LOAD + tag)
    with pytest.raises(TemplateSyntaxError):
        render(flashed, tag)
    assert len(remaining(flashed)) == 5
