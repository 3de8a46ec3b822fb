"""The example project on an installed django-prologue-sessions, not the checkout.

``.ci/run`` runs it with the interpreter of a fresh venv into which the built
wheel was installed: ``python -I .ci/wheel_smoke.py``. It checks that the
package comes from that venv's site-packages, runs ``manage.py check``,
migrates a users' database of its own and signs in through Django's test
client, on the memory engine, where the page's flash message comes from the
installed ``{% load flash %}`` tags and the "Where you're signed in" page from
the wheel's templates.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import tempfile
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "example_project"
sys.path.insert(0, str(EXAMPLE))
os.environ["DJANGO_SETTINGS_MODULE"] = "prologue_example.settings"
os.environ["PROLOGUE_EXAMPLE_ENGINE"] = "memory"
DATABASE = Path(tempfile.mkdtemp()) / "users.sqlite3"
os.environ["PROLOGUE_EXAMPLE_DATABASE"] = str(DATABASE)

import django  # noqa: E402

import django_prologue_sessions  # noqa: E402

installed = Path(django_prologue_sessions.__file__).resolve()
site_packages = Path(sysconfig.get_paths()["purelib"]).resolve()
if not installed.is_relative_to(site_packages):
    sys.exit(f"django_prologue_sessions comes from {installed}, not {site_packages}")
print(f"django_prologue_sessions from {installed.parent}")

django.setup()

from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

call_command("check", fail_level="WARNING")
call_command("migrate", verbosity=0)
setup_test_environment()
client = Client()
signed_in = client.post("/sign-in/", {"name": "Ada"}, follow=True)
page = signed_in.content.decode()
assert signed_in.redirect_chain == [("/", 302)], signed_in.redirect_chain
assert "Welcome! You are signed in." in page, page
assert "Signed in as <strong>Ada</strong>" in page, page
again = client.get("/").content.decode()
assert "Welcome! You are signed in." not in again, again
sessions = client.get("/account/sessions/").content.decode()
assert ">This device<" in sessions, sessions
DATABASE.unlink()
print(
    "example project: check passed, signed in, the flash message shown once, "
    "the sessions page listed this session"
)
