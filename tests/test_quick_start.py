"""The README's quick start, pasted into a fresh ``django-admin startproject``.

Its code blocks are read from README.md (between the ``quick-start``
markers), written into a new project as the README says, and the project is
checked and driven through Django's test client in a process of its own, as
a newcomer would run it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

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
client = Client()
saved = client.get("/save/")
first = client.get(saved["Location"])
again = client.get("/")
print(json.dumps({
    "save": [saved.status_code, saved["Location"]],
    "first": [first.status_code, first.content.decode()],
    "again": [again.status_code, again.content.decode()],
}))
"""


def quick_start_files() -> dict[str, str]:
    """The quick start's code blocks, by the file their first line names."""
    text = README.read_text()
    section = text.split("<!-- quick-start -->", 1)[1].split("<!-- /quick-start -->")[0]
    files = {}
    for block in re.findall(r"^```\w+\n(.*?)^```$", section, re.MULTILINE | re.DOTALL):
        first, _, rest = block.partition("\n")
        match = FILE_COMMENT.match(first)
        assert match, f"a quick-start block does not name its file: {first!r}"
        files[match[1]] = rest
    return files


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # The new project's manage.py picks its own settings, not the suite's.
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh startproject with the quick start pasted in."""
    root = tmp_path_factory.mktemp("quick_start")
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
    settings.write_text(settings.read_text() + "\n" + files.pop("mysite/settings.py"))
    for name, text in files.items():
        (root / name).parent.mkdir(exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_project_passes_manage_py_check(project: Path) -> None:
    checked = run([sys.executable, "manage.py", "check"], project)
    assert checked.returncode == 0, checked.stderr
    assert "System check identified no issues" in checked.stdout


def test_the_flashed_message_renders_once(project: Path) -> None:
    driven = run([sys.executable, "-c", DRIVE], project)
    assert driven.returncode == 0, driven.stderr
    pages = json.loads(driven.stdout)
    assert pages["save"] == [302, "/"]
    status, first = pages["first"]
    assert status == 200
    assert '<p class="success">Saved.</p>' in first
    # Only the success level was asked for: the warning is not shown.
    assert "Disk nearly full." not in first
    assert '<a href="/save/">Save</a>' in first
    status, again = pages["again"]
    assert status == 200
    assert "Saved." not in again
