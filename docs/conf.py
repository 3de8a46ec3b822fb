"""Sphinx configuration: ``sphinx-build -W --keep-going -b html docs docs/_build``."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

project = "django-prologue-sessions"
release = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
version = release
copyright = "django-prologue-sessions developers"

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
# "#some-heading" links, as on GitHub, down to ###.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

html_theme = "furo"
html_title = f"{project} {release}"
