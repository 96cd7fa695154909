"""`python -m tests.faults.inject <hf-medvlm argv...>`: run a command with a fault point armed, for kill tests.

`HF_MEDVLM_FAULT` holds a JSON object (or a list of them):

    {"target": "os:replace", "match": "results.json", "call": 1, "when": "before", "marker": "/tmp/x/fault"}

The `call`-th call of `target` (`module:attribute.path`) whose arguments' repr contains `match` writes `marker`
and then blocks forever, `before` or `after` the real call. The test's kill helper (`hf_medvlm.testing.kill`) waits
for the marker and SIGKILLs the process group: the kill lands at exactly that point of the work, however fast or
slow the machine, and without the race a timed kill or a polled output file would have.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import sys
import threading
from pathlib import Path


def _owner(target: str):
    module_name, _, path = target.partition(":")
    owner = importlib.import_module(module_name)
    *parents, name = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    return owner, name


def _halt(marker: str) -> None:
    Path(marker).write_text(f"{os.getpid()} {threading.current_thread().name}\n")
    threading.Event().wait()  # until the test's SIGKILL


def arm(spec: dict) -> None:
    owner, name = _owner(spec["target"])
    original = getattr(owner, name)
    wanted, when, match = int(spec.get("call", 1)), spec.get("when", "before"), spec.get("match")
    lock, seen = threading.Lock(), [0]

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        if match is not None and match not in repr((args, kwargs)):
            return original(*args, **kwargs)
        with lock:
            seen[0] += 1
            hit = seen[0] == wanted
        if hit and when == "before":
            _halt(spec["marker"])
        result = original(*args, **kwargs)
        if hit and when == "after":
            _halt(spec["marker"])
        return result

    setattr(owner, name, wrapper)


def main() -> int:
    specs = json.loads(os.environ["HF_MEDVLM_FAULT"])
    for spec in specs if isinstance(specs, list) else [specs]:
        arm(spec)
    from hf_medvlm.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
