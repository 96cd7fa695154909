"""Kill a command at a fault point and check what it left: the three checks of every test in this tier.

(a) nothing that looks complete but is not, (b) the rerun's output equals an uninterrupted run's, (c) no temporaries.
"""

from __future__ import annotations

import json
import os
import re
import sys
import uuid
from pathlib import Path

from hf_medvlm.testing.kill import KilledRun, file_exists, run_and_kill

# Temporaries of the package's writers (hf_medvlm.files, the fetcher, the shard writer, training checkpoints).
TEMPORARY = re.compile(r"\.(tmp|old|incomplete)-|\.checkpoint\.incomplete|\.part$|\.tmp$")


def fault(target: str, tmp_path: Path, *, match: str | None = None, call: int = 1, when: str = "before") -> dict:
    """A fault point for `kill_at`: the `call`-th call of `target` whose arguments mention `match`."""
    marker = tmp_path / f"fault-{uuid.uuid4().hex[:8]}.marker"
    return dict(target=target, match=match, call=call, when=when, marker=str(marker))


def kill_at(argv: list[str], *faults: dict, env: dict | None = None, timeout: float = 300) -> KilledRun:
    """Run `hf-medvlm *argv` with the fault points armed; SIGKILL it once any of them is reached."""
    env = {**os.environ, **(env or {}), "HF_MEDVLM_FAULT": json.dumps(list(faults))}
    markers = [file_exists(spec["marker"]) for spec in faults]
    run = run_and_kill(argv, lambda: any(holds() for holds in markers), env=env, timeout=timeout,
                       command=[sys.executable, "-m", "tests.faults.inject", *argv])
    assert run.killed, f"the command ended before reaching its fault point\n{run.output}"
    return run


def kill_when(argv: list[str], when, *, env: dict | None = None, timeout: float = 300) -> KilledRun:
    """Run `hf-medvlm *argv` and SIGKILL it as soon as `when()` holds (a condition on disk or on a test server)."""
    run = run_and_kill(argv, when, env={**os.environ, **(env or {})}, timeout=timeout)
    assert run.killed, f"the command ended before the kill condition held\n{run.output}"
    return run


def temporaries(*folders: Path) -> list[Path]:
    return [path for folder in folders if folder.exists() for path in folder.rglob("*")
            if TEMPORARY.search(path.name)]


def assert_no_temporaries(*folders: Path) -> None:
    left = temporaries(*folders)
    assert not left, f"temporaries left behind: {left}"


def assert_no_wrote_line(run: KilledRun) -> None:
    """A killed run must not have announced files as written."""
    assert not [line for line in run.stdout.splitlines() + run.stderr.splitlines() if line.startswith("wrote ")], \
        run.output


def tree_bytes(folder: Path, *, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    """Every file under `folder` by relative path, with its bytes (files named in `skip` left out)."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file() and path.name not in skip}


def jsonl(path: Path) -> list:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class HoldingResponder:
    """An `openai_server` responder that answers with `reply(body)` but holds its `hold_at`-th request (1-based)
    until `release` is set: the client is then killed with that request in flight (`held` says when)."""

    def __init__(self, reply, hold_at: int):
        import threading

        self.reply, self.hold_at = reply, hold_at
        self.held, self.release = threading.Event(), threading.Event()
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, body: dict):
        with self._lock:
            self.calls += 1
            hold = self.calls == self.hold_at
        if hold:
            self.held.set()
            self.release.wait(timeout=600)
        return self.reply(body)
