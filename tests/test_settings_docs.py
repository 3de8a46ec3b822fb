"""The settings reference, ``docs/settings.md``, against the option parser.

Every key ``SESSION_REDIS`` accepts has a row (type, default, meaning) and
every row is a key it accepts; a default written as a Python literal is the
one the parser fills in.
"""

from __future__ import annotations

import ast
from pathlib import Path

# The one line that names the option parser's module.
from django_prologue_sessions.backends.redis import options as redis_options

SETTINGS_PAGE = Path(__file__).resolve().parents[1] / "docs" / "settings.md"


def session_redis_rows() -> dict[str, list[str]]:
    """The table of the page's ``SESSION_REDIS`` section: key -> other cells."""
    text = SETTINGS_PAGE.read_text()
    section = text.split("\n## `SESSION_REDIS`\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        if line.startswith("| `"):
            quoted, *cells = (c.strip() for c in line.strip(" |").split(" | "))
            key = quoted.strip("`")
            assert quoted == f"`{key}`", line
            assert key not in rows, f"{key} is documented twice"
            rows[key] = cells
    return rows


def test_every_key_the_parser_accepts_is_documented_and_no_other() -> None:
    assert sorted(session_redis_rows()) == sorted(redis_options.KNOWN_KEYS)


def test_each_key_has_a_type_a_default_and_a_meaning() -> None:
    for key, cells in session_redis_rows().items():
        assert len(cells) == 3, key
        assert all(cells), key


def test_literal_defaults_are_the_parsers() -> None:
    defaults = redis_options.parse({}, {})
    compared = []
    for key, (_, default, _) in session_redis_rows().items():
        try:
            value = ast.literal_eval(default.strip("`"))
        except (ValueError, SyntaxError):
            continue  # a dash, "`socket_timeout`", "`0` (or the URL's)": words
        if hasattr(defaults, key):
            assert getattr(defaults, key) == value, key
            compared.append(key)
    assert {"host", "port", "prefix", "socket_timeout", "on_unavailable"} <= set(
        compared
    )


def top_table_rows() -> dict[str, list[str]]:
    """The page's first table, of every setting: name -> other cells."""
    text = SETTINGS_PAGE.read_text().split("\n## ", 1)[0]
    rows = {}
    for line in text.splitlines():
        if line.startswith("| `"):
            quoted, *cells = (c.strip() for c in line.strip(" |").split(" | "))
            rows[quoted.strip("`")] = cells
    return rows


def test_every_setting_of_the_app_has_a_row() -> None:
    from django_prologue_sessions.conf import Settings

    names = {name for name in vars(Settings) if name.isupper()}
    assert names <= set(top_table_rows())
    for name in names:
        assert len(top_table_rows()[name]) == 3, name


def test_every_check_id_is_documented() -> None:
    import re

    checks = (Path(__file__).resolve().parents[1] / "django_prologue_sessions").glob(
        "**/*.py"
    )
    used = {
        found
        for path in checks
        for found in re.findall(
            r'"django_prologue_sessions\.([EWI]\d{3})"', path.read_text()
        )
    }
    section = SETTINGS_PAGE.read_text().split("\n## System checks\n", 1)[1]
    documented = set(
        re.findall(r"\| `(?:django_prologue_sessions\.)?([EWI]\d{3})` \|", section)
    )
    assert {"E060", "E061", "E062", "E070", "E080", "E081", "E082"} <= used
    assert used <= documented
