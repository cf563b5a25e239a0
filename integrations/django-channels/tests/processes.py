"""A server process for the tests: started, its output collected, stopped."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")

# How daphne is run: on a loopback port the OS picks.
DAPHNE_ARGS = [sys.executable, "-m", "daphne", "-v", "2", "-e", "tcp:port=0:interface=127.0.0.1"]


def wsticket_env() -> dict[str, str]:
    """The environment of a wsticket process: none of the caller's
    WSTICKET_ variables, loopback ports the OS picks, JSON logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WSTICKET_")}
    env.update(
        WSTICKET_LISTEN="127.0.0.1:0",
        WSTICKET_ADMIN_LISTEN="127.0.0.1:0",
        WSTICKET_LOG_FORMAT="json",
        WSTICKET_LOG="info",
    )
    return env


def wsticket_listening(line: str) -> str | None:
    """The address of wsticket's "wsticket listening" log line."""
    try:
        fields = json.loads(line).get("fields", {})
    except ValueError:
        return None
    if fields.get("message") == "wsticket listening":
        return str(fields["addr"])
    return None


def daphne_listening(line: str) -> str | None:
    """The port of daphne's "Listening on" line."""
    match = re.search(r"Listening on TCP address 127\.0\.0\.1:(\d+)", line)
    return match.group(1) if match else None


@contextmanager
def running(
    name: str,
    args: list[str],
    *,
    env: Mapping[str, str],
    ready: Callable[[str], T | None],
    cwd: Path | None = None,
    with_stdout: bool = False,
    timeout: float = 30,
) -> Iterator[tuple[T, list[str]]]:
    """Run ``args`` until the block ends; yield what ``ready`` returned for the
    first output line it accepted, and the output so far (a live list).

    The output is stderr, and stdout too with ``with_stdout``. The test fails,
    with that output, if the process exits or says nothing ``ready`` accepts
    within ``timeout`` seconds.
    """
    proc = subprocess.Popen(
        args,
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if with_stdout else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if with_stdout else subprocess.PIPE,
    )
    output = proc.stdout if with_stdout else proc.stderr
    assert output is not None
    lines: queue.Queue[str | None] = queue.Queue()
    log: list[str] = []

    def pump() -> None:
        for raw in output:
            line = raw.decode("utf-8", "replace")
            log.append(line)
            lines.put(line)
        lines.put(None)

    pumper = threading.Thread(target=pump, name=f"{name}-output", daemon=True)
    pumper.start()
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(
                    f"{name} did not report its address within {timeout} s:\n" + "".join(log)
                )
            if line is None:
                pytest.fail(f"{name} exited ({proc.wait()}):\n" + "".join(log))
            found = ready(line)
            if found is not None:
                break
        yield found, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        pumper.join(timeout=5)
        output.close()
