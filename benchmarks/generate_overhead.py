"""Client overhead of the generation runner: `run_requests` + `OpenAIChatBackend` against the loopback OpenAI server.

1. Fixed instant reply, concurrency 1: per-request client overhead = wall time / requests (the server's own
   handling is included, so this is an upper bound on what the client adds).
2. Server sleeps 50 ms per reply: requests/s at concurrency 1 vs 32 (target: >= 10x).

    python benchmarks/generate_overhead.py [--requests 2000] [--sleep_ms 50]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from hf_medvlm.llm import ChatRequest, OpenAIChatBackend, run_requests
from hf_medvlm.testing.openai_server import Reply, start_openai_server

REPLY = '{"Image_description": "An axial CT slice.", "QA-query": "What is shown?", "QA-answer": "A liver lesion."}'


def _jobs(n: int):
    for i in range(n):
        yield f"r{i}", ChatRequest(messages=[{"role": "user", "content": f"Reformat figure {i}."}], max_tokens=64)


def _run(url: str, n: int, concurrency: int, out: Path) -> float:
    backend = OpenAIChatBackend(url, model="loopback", api_key="bench", max_retries=0)
    start = time.perf_counter()
    report = run_requests(_jobs(n), backend, output_path=out, concurrency=concurrency, progress=False)
    elapsed = time.perf_counter() - start
    if report.done != n:
        raise RuntimeError(f"only {report.done}/{n} requests succeeded: {report.failures[:3]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--sleep_ms", type=float, default=50.0)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    with start_openai_server(lambda body: REPLY) as server:
        elapsed = _run(server.url, args.requests, 1, tmp / "instant.jsonl")
    overhead_ms = 1000 * elapsed / args.requests
    print(f"instant replies, concurrency 1: {args.requests} requests in {elapsed:.2f}s -> "
          f"{overhead_ms:.2f} ms/request round trip (client + loopback server), target < 5 ms: "
          f"{'PASS' if overhead_ms < 5 else 'MISS'}")

    delay = args.sleep_ms / 1000
    rates = {}
    for concurrency in (1, 32):
        # At concurrency 1 each request waits the full sleep, so fewer requests keep the run short; same rate.
        n = args.requests if concurrency > 1 else max(100, args.requests // 10)
        with start_openai_server(lambda body: Reply.slow(REPLY, delay)) as server:
            elapsed = _run(server.url, n, concurrency, tmp / f"slow_c{concurrency}.jsonl")
        rates[concurrency] = n / elapsed
        extra = 1000 * (elapsed / n - delay) if concurrency == 1 else None
        print(f"server sleeps {args.sleep_ms:g} ms, concurrency {concurrency:>2}: {n} requests in {elapsed:.2f}s -> "
              f"{rates[concurrency]:.1f} req/s" + (f" ({extra:.2f} ms/request beyond the sleep)" if extra else ""))
    speedup = rates[32] / rates[1]
    print(f"speed-up concurrency 32 vs 1: {speedup:.1f}x, target >= 10x: {'PASS' if speedup >= 10 else 'MISS'}")


if __name__ == "__main__":
    main()
