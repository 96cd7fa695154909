"""Caption near-duplicate search at scale: the faiss-based `find_near_duplicates` against sentence-transformers'
`paraphrase_mining_embeddings`, side by side (wall time, CPU time, peak RSS, recall of planted duplicates).

The embeddings are synthetic but shaped like caption embeddings: unit vectors of all-mpnet-base-v2's width (768)
around N/100 topics whose sizes follow a Zipf law (a few very common kinds of figure, many rare ones), so that rows
of one topic have cosine about 0.5. 1,000 rows of the second half are planted near-copies (cosine 0.91 to 0.99) of
random rows of the first half; a method "finds" a planted row when it names exactly its source. Both methods apply
the same greedy rule at cosine > 0.9 (paraphrase mining's pairs are resolved greedily here, over its top_k).

Each (method, size) runs in a fresh subprocess, so peak RSS is that run's own. paraphrase mining is exact and
compares all N^2 pairs, so above --st_max_size its time is extrapolated from the largest size measured, as N^2, and
labelled so; faiss sizes above --faiss_max_size are extrapolated as N^1.5 (4 sqrt(N) cells).

    python benchmarks/dedup.py          # both at 10K and 100K, faiss at 300K, 1M extrapolated (~20 min on 2 cores)
    python benchmarks/dedup.py --faiss_max_size 1000000   # faiss measured at 1M too (~7 GB of RAM)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DIM, PLANTED, THRESHOLD = 768, 1000, 0.9


def make_embeddings(n: int, seed: int = 0):
    """Zipf-sized topics, unit vectors, with PLANTED near-copies; returns (vectors, {row: source})."""
    import numpy as np

    rng = np.random.default_rng(seed)
    topics = max(1, n // 100)
    weights = 1.0 / np.arange(1, topics + 1)
    centers = rng.standard_normal((topics, DIM), dtype=np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    vectors = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 65536):  # chunked: a float64 temporary of 1M x 768 would take 6 GB
        rows = min(65536, n - start)
        chunk = centers[rng.choice(topics, size=rows, p=weights / weights.sum())]
        chunk += rng.standard_normal((rows, DIM), dtype=np.float32) / np.sqrt(DIM)
        vectors[start:start + rows] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    copies = rng.choice(np.arange(n // 2, n), size=PLANTED, replace=False)
    sources = rng.integers(0, n // 2, size=PLANTED)
    for row, source in zip(copies, sources):
        noisy = vectors[source] + rng.uniform(0.15, 0.45) * rng.standard_normal(DIM, dtype=np.float32) / np.sqrt(DIM)
        vectors[row] = noisy / np.linalg.norm(noisy)
    return vectors, dict(zip(copies.tolist(), sources.tolist()))


def dedup_faiss(vectors):
    from hf_medvlm.generation.filtering import find_near_duplicates

    return find_near_duplicates(vectors, THRESHOLD)


def dedup_paraphrase_mining(vectors, top_k: int = 10):
    """sentence-transformers' exact top-k mining, then the same greedy rule over the pairs above the threshold."""
    import numpy as np
    import torch
    from sentence_transformers.util import dot_score, paraphrase_mining_embeddings

    pairs = paraphrase_mining_embeddings(torch.from_numpy(vectors), top_k=top_k, max_pairs=top_k * len(vectors),
                                         score_function=dot_score)
    duplicate_of = np.full(len(vectors), -1, dtype=np.int64)
    for _, earlier, later in sorted((p for p in pairs if p[0] > THRESHOLD), key=lambda p: (p[2], p[1])):
        if duplicate_of[later] < 0 and duplicate_of[earlier] < 0:
            duplicate_of[later] = earlier
    return duplicate_of


METHODS = {"faiss": dedup_faiss, "paraphrase_mining": dedup_paraphrase_mining}


def child(method: str, n: int) -> None:
    import resource

    import psutil

    vectors, planted = make_embeddings(n)
    METHODS[method](vectors[:100])  # imports (torch, transformers via hf_medvlm) and thread pools, not timed
    data_rss = psutil.Process().memory_info().rss / 2**20
    cpu0, start = time.process_time(), time.perf_counter()
    duplicate_of = METHODS[method](vectors)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu0
    found = sum(int(duplicate_of[row] == source) for row, source in planted.items())
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "data_rss_mib": data_rss,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "found": found,
                      "flagged": int((duplicate_of >= 0).sum())}))


def run_child(method: str, n: int) -> dict:
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    out = subprocess.run([sys.executable, __file__, "--child", method, str(n)], env=env, capture_output=True,
                         text=True)
    if out.returncode:
        raise SystemExit(f"{method} at N={n} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def extrapolate(measured: dict[int, dict], n: int, power: float) -> dict:
    base_n = max(measured)
    scale = (n / base_n) ** power
    return {"seconds": measured[base_n]["seconds"] * scale, "cpu_seconds": measured[base_n]["cpu_seconds"] * scale,
            "extrapolated_from": base_n}


def row(method: str, n: int, result: dict) -> str:
    if "extrapolated_from" in result:
        return (f"| {method} | {n:,} | ~{result['seconds']:,.0f} | ~{result['cpu_seconds']:,.0f} | - | - | "
                f"extrapolated (N^{'2' if method != 'faiss' else '1.5'} from {result['extrapolated_from']:,}) |")
    extra = result["peak_rss_mib"] - result["data_rss_mib"]
    return (f"| {method} | {n:,} | {result['seconds']:,.1f} | {result['cpu_seconds']:,.1f} | "
            f"{result['peak_rss_mib']:,.0f} (+{extra:,.0f}) | {result['found']}/{PLANTED} | "
            f"measured; {result['flagged']:,} rows flagged |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 300_000, 1_000_000])
    parser.add_argument("--st_max_size", type=int, default=100_000, help="Largest N run for paraphrase mining.")
    parser.add_argument("--faiss_max_size", type=int, default=300_000, help="Largest N run for faiss.")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], int(args.child[1]))
    print(f"# {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} at start; dim {DIM}, "
          f"cosine > {THRESHOLD}, {PLANTED} planted duplicates")
    print("| method | N | wall s | CPU s | peak RSS MiB (+ over embeddings and imports) | planted found | note |")
    print("|---|---|---|---|---|---|---|")
    largest = {}
    for method, max_size, power in (("faiss", args.faiss_max_size, 1.5), ("paraphrase_mining", args.st_max_size, 2)):
        measured = {}
        for n in sorted(args.sizes):
            if n <= max_size:
                measured[n] = run_child(method, n)
            elif measured:
                largest[method] = extrapolate(measured, n, power)
            print(row(method, n, measured.get(n) or largest[method]), flush=True)
            largest[method] = measured.get(n) or largest[method]
    n = max(args.sizes)
    print(f"# load average {os.getloadavg()[0]:.1f} at the end. At N={n:,}: faiss {largest['faiss']['seconds']:,.0f} s, "
          f"paraphrase_mining {largest['paraphrase_mining']['seconds']:,.0f} s wall "
          f"({largest['paraphrase_mining']['seconds'] / largest['faiss']['seconds']:.0f}x)")


if __name__ == "__main__":
    main()
