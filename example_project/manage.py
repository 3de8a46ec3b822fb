#!/usr/bin/env python
"""Run the example site: ``python example_project/manage.py runserver``.

The session engine comes from ``$PROLOGUE_EXAMPLE_ENGINE`` (``signed_cookies``,
the default, ``memory`` or ``redis``); see docs/example_project.md.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "prologue_example.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
