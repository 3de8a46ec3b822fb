"""The README's quick start, pasted into a fresh ``django-admin startproject``.

Its code blocks are read from README.md (between the ``quick-start``
markers), written into a new project as the README says, and the project is
checked and driven through Django's test client in a process of its own, as
a newcomer would run it: on the signed-cookie engine it sets, on the memory
engine, and on Redis with the Redis quick start's settings. On each, the
flashed messages must go through that engine (the session), never a cookie
of their own.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
# The first line of each block names its file, as a comment.
FILE_COMMENT = re.compile(r"^(?:#|\{#)\s*(\S+?)\s*(?:#\})?$")

DRIVE = """
import json, os
os.environ["DJANGO_SETTINGS_MODULE"] = "mysite.settings"
import django
django.setup()
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()
from importlib import import_module
from django.conf import settings
from django.contrib.messages.storage.cookie import MessageDecoder
client = Client()

def stored():
    # What the engine holds, loaded afresh by the cookie's key, and whether
    # the messages got a cookie of their own.
    cookie = client.cookies.get("sessionid")
    session = import_module(settings.SESSION_ENGINE).SessionStore(
        cookie.value if cookie else None
    )
    messages = json.loads(session.get("_messages", "[]"), cls=MessageDecoder)
    return {
        "messages_cookie": "messages" in client.cookies,
        "in_session": [message.message for message in messages],
    }

saved = client.get("/save/")
after_save = stored()
first = client.get(saved["Location"])
after_first = stored()
again = client.get("/")
print(json.dumps({
    "engine": settings.SESSION_ENGINE,
    "save": [saved.status_code, saved["Location"]],
    "first": [first.status_code, first.content.decode()],
    "again": [again.status_code, again.content.decode()],
    "stored": [after_save, after_first, stored()],
}))
"""


def readme_section(name: str) -> str:
    text = README.read_text()
    return text.split(f"<!-- {name} -->", 1)[1].split(f"<!-- /{name} -->")[0]


def code_blocks(section: str) -> list[str]:
    return re.findall(r"^```\w+\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)


def quick_start_files() -> dict[str, str]:
    """The quick start's code blocks, by the file their first line names."""
    files = {}
    for block in code_blocks(readme_section("quick-start")):
        first, _, rest = block.partition("\n")
        match = FILE_COMMENT.match(first)
        assert match, f"a quick-start block does not name its file: {first!r}"
        files[match[1]] = rest
    return files


def redis_quick_start_settings(redis_url: str) -> str:
    """The Redis quick start's settings, on the test server."""
    (settings,) = (
        block
        for block in code_blocks(readme_section("redis-quick-start"))
        if "SESSION_ENGINE" in block
    )
    assert "redis://127.0.0.1:6379/0" in settings
    return settings.replace("redis://127.0.0.1:6379/0", redis_url)


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # The new project's manage.py picks its own settings, not the suite's.
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


ENGINES = ["signed_cookies", "memory", pytest.param("redis", marks=pytest.mark.redis)]


@pytest.fixture(scope="module", params=ENGINES)
def project(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A fresh startproject with the quick start pasted in, on each engine."""
    engine: str = request.param
    root = tmp_path_factory.mktemp(f"quick_start_{engine}")
    made = run([sys.executable, "-m", "django", "startproject", "mysite", "."], root)
    assert made.returncode == 0, made.stderr
    files = quick_start_files()
    assert sorted(files) == [
        "mysite/settings.py",
        "mysite/urls.py",
        "mysite/views.py",
        "templates/home.html",
    ]
    settings = root / "mysite" / "settings.py"
    added = files.pop("mysite/settings.py")
    if engine == "memory":
        added += f'SESSION_ENGINE = "django_prologue_sessions.backends.{engine}"\n'
    elif engine == "redis":
        added += redis_quick_start_settings(request.getfixturevalue("redis_url"))
    settings.write_text(settings.read_text() + "\n" + added)
    for name, text in files.items():
        (root / name).parent.mkdir(exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_project_passes_manage_py_check(project: Path) -> None:
    checked = run([sys.executable, "manage.py", "check"], project)
    assert checked.returncode == 0, checked.stderr
    assert "System check identified no issues" in checked.stdout


@pytest.fixture(scope="module")
def driven(project: Path) -> dict[str, Any]:
    """The pages and stored messages of one run of ``DRIVE`` in the project."""
    driven = run([sys.executable, "-c", DRIVE], project)
    assert driven.returncode == 0, driven.stderr
    result: dict[str, Any] = json.loads(driven.stdout)
    return result


def test_the_project_runs_on_its_engine(
    driven: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    engine = request.node.callspec.params["project"]
    assert driven["engine"] == f"django_prologue_sessions.backends.{engine}"


def test_the_flashed_message_renders_once(driven: dict[str, Any]) -> None:
    assert driven["save"] == [302, "/"]
    status, first = driven["first"]
    assert status == 200
    assert '<p class="success">Saved.</p>' in first
    # Only the success level was asked for: the warning is not shown.
    assert "Disk nearly full." not in first
    assert '<a href="/save/">Save</a>' in first
    status, again = driven["again"]
    assert status == 200
    assert "Saved." not in again


def test_the_messages_go_through_the_engine(driven: dict[str, Any]) -> None:
    after_save, after_first, after_again = driven["stored"]
    # Both flashed messages are in the session the engine stores, and no
    # message ever got a cookie of its own.
    assert after_save == {
        "messages_cookie": False,
        "in_session": ["Saved.", "Disk nearly full."],
    }
    # The page took the success message only: the warning stays stored.
    assert (
        after_first
        == after_again
        == {
            "messages_cookie": False,
            "in_session": ["Disk nearly full."],
        }
    )


# A line that installs this package by name, from PyPI, where it is not yet.
BY_NAME = re.compile(
    r"pip install[^\n`]*[\"' ]django-prologue-sessions"
    r"(\[[\w,]+\])?(?!\s*@)(?=[\"'\s]|$)"
)


def test_every_install_line_works_from_a_checkout() -> None:
    """Until the package is on PyPI, only README's "once it is published"
    block may install it by name; every other line installs a checkout."""
    docs = Path(__file__).resolve().parents[1] / "docs"
    for path in [README, *sorted(docs.glob("*.md"))]:
        text = path.read_text()
        if path == README:
            before, _, rest = text.partition("<!-- published -->")
            published, _, after = rest.partition("<!-- /published -->")
            assert BY_NAME.search(published), "the published block lost its lines"
            text = before + after
        by_name = [m[0] for m in BY_NAME.finditer(text)]
        assert by_name == [], f"{path.name} installs from PyPI: {by_name}"
