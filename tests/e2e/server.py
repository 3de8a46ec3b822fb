"""The example project served by ``manage.py runserver`` on loopback.

The way the README runs it, so that tests see what a new user sees.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
MANAGE_PY = ROOT / "example_project" / "manage.py"


class ExampleServer:
    """``manage.py runserver`` of the example, on loopback, with one engine."""

    def __init__(self, engine: str, redis_url: str = "") -> None:
        self.engine = engine
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix=f"prologue-example-{engine}-", suffix=".log", delete=False
        )
        env = {
            **os.environ,
            "PROLOGUE_EXAMPLE_ENGINE": engine,
            "PROLOGUE_EXAMPLE_REDIS_URL": redis_url,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
            ),
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)
        # The users' database, a file of this server's own, made as the
        # README makes it.
        self.database = Path(self.log.name).with_suffix(".sqlite3")
        env["PROLOGUE_EXAMPLE_DATABASE"] = str(self.database)
        subprocess.run(
            [sys.executable, str(MANAGE_PY), "migrate", "--noinput", "-v", "0"],
            env=env,
            check=True,
            stdin=subprocess.DEVNULL,
        )
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(MANAGE_PY),
                "runserver",
                f"127.0.0.1:{self.port}",
                "--noreload",
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def wait_until_serving(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"The example server exited:\n{self.output()}")
            try:
                with urllib.request.urlopen(f"{self.url}/levels/", timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        raise RuntimeError(f"The example server did not answer:\n{self.output()}")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)
        self.database.unlink(missing_ok=True)
