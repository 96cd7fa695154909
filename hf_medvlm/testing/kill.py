"""Kill a command with SIGKILL at a chosen point of its work, for kill-and-rerun tests.

TEST INFRASTRUCTURE, NOT PRODUCT CODE. `run_and_kill` starts `python -m hf_medvlm <args>` in its own process group,
polls a condition on disk (a marker file appears, a file reaches N bytes or N lines, a glob matches) and sends
SIGKILL to the whole group the moment it holds: the kill lands at a known point of the work, not after a sleep that a
slow or a fast machine turns into another point.

    from hf_medvlm.testing.kill import file_lines_at_least, run_and_kill
    run = run_and_kill(["eval", "--config", "r.yaml"], file_lines_at_least(out / "answers.rank0.jsonl", 2))
    assert run.killed, run.output   # the command did not finish before the condition held
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

__all__ = ["KilledRun", "run_and_kill", "file_exists", "glob_matches", "file_size_at_least", "file_lines_at_least"]

Condition = Callable[[], bool]


@dataclass
class KilledRun:
    killed: bool  # SIGKILL was sent while the condition held; False: the process ended (or timed out) first
    returncode: int | None
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return f"exit {self.returncode}\nSTDOUT:\n{self.stdout[-3000:]}\nSTDERR:\n{self.stderr[-6000:]}"


def file_exists(path: str | os.PathLike) -> Condition:
    return lambda: os.path.exists(path)


def glob_matches(folder: str | os.PathLike, pattern: str, count: int = 1) -> Condition:
    """At least `count` paths under `folder` match `pattern` (`Path.glob` syntax, `**` allowed)."""
    return lambda: sum(1 for _ in Path(folder).glob(pattern)) >= count


def file_size_at_least(path: str | os.PathLike, n_bytes: int) -> Condition:
    return lambda: os.path.exists(path) and os.path.getsize(path) >= n_bytes


def file_lines_at_least(path: str | os.PathLike, n_lines: int) -> Condition:
    def holds() -> bool:
        try:
            with open(path, "rb") as handle:
                return handle.read().count(b"\n") >= n_lines
        except FileNotFoundError:
            return False

    return holds


def run_and_kill(args: list[str], when: Condition, *, timeout: float = 600, poll_s: float = 0.005,
                 env: dict | None = None, cwd: str | os.PathLike | None = None,
                 command: list[str] | None = None) -> KilledRun:
    """Run `python -m hf_medvlm *args` (or `command`) and SIGKILL its process group as soon as `when()` is true.

    Output goes to temporary files, not pipes, so a chatty child never blocks on a full pipe while it is watched.
    """
    command = command or [sys.executable, "-m", "hf_medvlm", *args]
    deadline, killed = time.monotonic() + timeout, False
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=cwd, start_new_session=True)
        while process.poll() is None:
            killed = when()
            if killed or time.monotonic() > deadline:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                break
            time.sleep(poll_s)
        out.seek(0)
        err.seek(0)
        return KilledRun(killed, process.returncode, out.read().decode(errors="replace"),
                         err.read().decode(errors="replace"))
