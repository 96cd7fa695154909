"""Run the `<!-- chain: NAME -->` blocks of a doc in the current folder, chain by chain, as a reader would: the `setup`
chain first, then each other chain in the doc's order; `hf-medvlm` runs in this process (one import for all).

    python -m tests.run_walkthroughs docs/walkthroughs.md docs/reproduce.md results.json

Each chain stops at its first failing command; the others still run. `results.json` maps chain -> {ok, failed, seconds,
commands}. Started by tests/test_docs.py in a fresh folder with the loopback servers' addresses in the environment.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

from tests.doc_blocks import doc_blocks, export, hf_medvlm_argv, shell_commands


def _run(command: str) -> None:
    if export(command):
        return
    argv = hf_medvlm_argv(command)
    if argv is None:
        raise AssertionError(f"the walkthrough runs a command the test does not know: {command}")
    from hf_medvlm.cli import main

    code = main(argv)
    if code != 0:
        raise AssertionError(f"exit code {code}")


def run_chains(docs: list[Path]) -> dict:
    chains: dict[str, list[tuple[str, str]]] = {}
    for doc in docs:
        for block in doc_blocks(doc):
            if block.chain and block.lang == "bash":
                chains.setdefault(block.chain, []).extend((block.folder, c) for c in shell_commands(block.code))
    order = ["setup", *[name for name in chains if name != "setup"]]
    results, home = {}, Path.cwd()
    for name in order:
        started, failed, done = time.perf_counter(), None, 0
        for folder, command in chains.get(name, []):
            print(f"\n### [{name}] {command}", flush=True)
            try:
                os.chdir(home / folder)
                _run(command)
                done += 1
            except BaseException as err:  # noqa: BLE001 - report every failure, incl. SystemExit from argparse
                traceback.print_exc()
                failed = f"{command}: {type(err).__name__}: {err}"
                break
            finally:
                os.chdir(home)
        results[name] = {"ok": failed is None, "failed": failed, "seconds": round(time.perf_counter() - started, 1),
                         "commands": done}
        print(f"### [{name}] {'ok' if failed is None else 'FAILED'} in {results[name]['seconds']}s", flush=True)
    return results


if __name__ == "__main__":
    Path(sys.argv[-1]).write_text(json.dumps(run_chains([Path(p) for p in sys.argv[1:-1]]), indent=1))
