"""Start-up time: `import hf_medvlm`, `hf-medvlm --help` and every `hf-medvlm <command> --help`, next to
`import torch` and `import transformers`, each the median wall time of several fresh interpreters.

Targets (issue 15): `import hf_medvlm` (which registers the Auto classes) within 1.5x of `import torch, transformers`;
`--help` imports no model code (`tests/test_startup.py` checks which modules it loads). Each `--help` is shown
against both references: what it adds to `import hf_medvlm` is its own arguments' imports (TRL's parser, datasets for
`prepare` / `select`, the openai client for `eval` / `generate`). `train` and `select train` parse `TrainingArguments`,
whose module imports peft and, through it, `PreTrainedModel` and a transformers model.

    python benchmarks/startup.py [--runs 7]      (from the repository root; measures this checkout)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HELP = [[], ["convert"], ["prepare"], ["fetch-images"], ["train"], ["merge-lora"], ["eval"], ["report"], ["generate"],
        ["filter"], ["select"], ["select", "train"], ["push"], ["demo"]]


def wall_time(argv: list[str], runs: int) -> float:
    """Median wall time of `runs` fresh interpreters running `argv` (after one untimed run to warm the file cache)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               TRANSFORMERS_VERBOSITY="error", PYTHONWARNINGS="ignore")
    times = []
    for run in range(runs + 1):
        start = time.perf_counter()
        subprocess.run(argv, check=True, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if run:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="timed fresh interpreters per row")
    args = parser.parse_args()
    python = [sys.executable, "-c"]
    reference = {name: wall_time(python + [code], args.runs) for name, code in [
        ("python (empty)", "pass"), ("import torch", "import torch"), ("import transformers", "import transformers"),
        ("import torch, transformers", "import torch, transformers")]}
    base = reference["import torch, transformers"]
    package = wall_time(python + ["import hf_medvlm"], args.runs)
    rows = [(f"hf-medvlm {' '.join([*argv, '--help'])}", wall_time([sys.executable, "-m", "hf_medvlm", *argv, "--help"],
                                                                  args.runs)) for argv in HELP]
    print(f"median of {args.runs} fresh interpreters each")
    print(f"{'what':32s} {'seconds':>8s} {'x torch+transformers':>21s} {'x import hf_medvlm':>19s}")
    for name, seconds in reference.items():
        print(f"{name:32s} {seconds:8.2f} {seconds / base:20.2f}x")
    verdict = "ok" if package / base <= 1.5 else "MISSED"
    print(f"{'import hf_medvlm':32s} {package:8.2f} {package / base:20.2f}x {1:18.2f}x  target <= 1.5x: {verdict}")
    for name, seconds in rows:
        print(f"{name:32s} {seconds:8.2f} {seconds / base:20.2f}x {seconds / package:18.2f}x")

if __name__ == "__main__":
    main()
