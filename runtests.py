#!/usr/bin/env python
"""Run the test suite: ``python runtests.py [pytest arguments]``.

A thin wrapper over pytest (settings in pyproject.toml); every argument is
passed on, e.g. ``python runtests.py tests/test_checks.py -k E001``.
"""

from __future__ import annotations

import os
import sys

import pytest

if __name__ == "__main__":
    os.chdir(os.path.dirname(os.path.abspath(__file__)))
    sys.exit(pytest.main(sys.argv[1:]))
