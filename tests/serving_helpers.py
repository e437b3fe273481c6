"""Servers started by tests: on a free loopback port, in their own process group,
stopped with that whole group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from helpers import command_env


def free_ports(count: int = 1) -> list[int]:
    """``count`` distinct TCP ports of 127.0.0.1 that nothing listens on now (each
    held open until all are chosen, so none is picked twice)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


@dataclass
class Server:
    """A server started by a test: its address, process and log file."""

    url: str
    process: subprocess.Popen
    log: Path
    ready_path: str = "/ping"

    def post(self, body: object, path: str = "/invocations") -> requests.Response:
        """POST ``body`` as JSON."""
        return requests.post(f"{self.url}{path}", json=body, timeout=60)

    def is_up(self) -> bool:
        """Whether the server answers its readiness path with 200."""
        return requests.get(f"{self.url}{self.ready_path}", timeout=10).ok


def start_server(
    args: list[str], cwd: Path, log: Path, ready_path: str = "/ping", **env: str
) -> Server:
    """Run ``args --port <free port>`` in its own process group; wait until it is up.

    Output goes to ``log``; if the server exits or is not up within 3 minutes, the
    test fails with the end of that log.
    """
    (port,) = free_ports()
    with log.open("w") as output:
        process = subprocess.Popen(
            [*args, "--port", str(port)],
            cwd=cwd,
            env=command_env(**env),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log, ready_path)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if server.is_up():
                return server
        except requests.RequestException:  # not listening yet
            pass
        time.sleep(0.25)
    stop_server(server)
    pytest.fail(
        f"`{' '.join(map(str, args))}` did not start:\n{log.read_text()[-6000:]}"
    )


def stop_server(server: Server) -> None:
    """SIGTERM to the server's process group; SIGKILL if it is still there in 20 s."""
    try:
        os.killpg(server.process.pid, signal.SIGTERM)
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=20)
    except ProcessLookupError:
        pass
