"""Test-suite time: the README test command (`python -m pytest -m "not slow" -n 2 -q`) against the same tests in one
process (`-n 0`), each in a fresh interpreter, with the pass counts that show both ran the same tests.

Target (issue 15): under 6 minutes on an idle 2-core machine, with the same coverage. Run it with nothing else on the
machine; it takes the two suites' time added up (about 12 minutes on 2 cores).

    python benchmarks/suite_time.py                  (from the repository root; measures this checkout)
    python benchmarks/suite_time.py --workers 2 4    (several worker counts; 0 is always measured first)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_S = 6 * 60


def run_suite(workers: int) -> tuple[float, str]:
    """Wall time of the default suite on `workers` pytest-xdist workers (0: in this one process), and its summary."""
    argv = [sys.executable, "-m", "pytest", "-m", "not slow", "-n", str(workers), "-q", "-p", "no:cacheprovider"]
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, env=dict(os.environ))
    seconds = time.perf_counter() - start
    lines = result.stdout.strip().splitlines()
    summary = re.sub(r"=+", "", lines[-1]).strip() if lines else "no output"
    if result.returncode != 0:
        failed = [line for line in lines if line.startswith(("FAILED ", "ERROR "))]
        summary += f" (pytest exit code {result.returncode}) " + "; ".join(failed)
    return seconds, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[2], help="worker counts to time besides 0")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; target: under {TARGET_S // 60} min for the README command (-n 2)")
    print(f"{'workers':>8s} {'seconds':>8s} {'vs one process':>15s}  pytest summary")
    serial, summary = run_suite(0)
    print(f"{0:8d} {serial:8.1f} {1:14.2f}x  {summary}", flush=True)
    for workers in args.workers:
        seconds, summary = run_suite(workers)
        verdict = ("ok" if seconds < TARGET_S else "MISSED") if workers == 2 else ""
        print(f"{workers:8d} {seconds:8.1f} {serial / seconds:14.2f}x  {summary}  {verdict}", flush=True)


if __name__ == "__main__":
    main()
