"""Throughput and peak memory of `hf-medvlm prepare` at two dataset sizes (memory must not grow with N).

Builds a LLaVA-Med-instruct-style raw JSON file with N records (multi-turn conversations, `<image>` at either end)
over small real-looking images (the demo set's DICOM / histology / fundus renders shrunk to 96 px, JPEG), then runs
the real pipeline (streamed JSON decoding, conversion, validation, full image decoding, sharded Parquet writing)
in a fresh subprocess per size and reports records/s and the child's peak RSS.

    python benchmarks/prepare_throughput.py                 # 10,000 and 50,000 records
    python benchmarks/prepare_throughput.py --sizes 2000 60000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def make_image_pool(folder: Path, side: int = 96) -> list[str]:
    from hf_medvlm.data.demo import load_demo_facts

    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for facts in load_demo_facts(max_side=side):
        name = f"{facts.key}.jpg"
        facts.image.save(folder / name, format="JPEG", quality=90)
        names.append(name)
    return names


def write_raw(path: Path, n: int, images: list[str]) -> None:
    with path.open("w") as handle:
        handle.write("[")
        for i in range(n):
            q = "What imaging modality is shown?"
            first = f"{q}\n<image>" if i % 2 else f"<image>\n{q}"
            record = {"id": f"{i}_F1", "image": images[i % len(images)],
                      "domain": {"chest_xray": i % 5 == 0, "mri": i % 5 == 1, "ct_scan": i % 5 == 2,
                                 "histology": i % 5 == 3, "gross": i % 5 == 4},
                      "conversations": [{"from": "human", "value": first},
                                        {"from": "gpt", "value": f"Answer number {i}, a sentence of findings."},
                                        {"from": "human", "value": "Is there any abnormality?"},
                                        {"from": "gpt", "value": "No abnormality is described in the caption."}]}
            handle.write(("," if i else "") + json.dumps(record))
        handle.write("]")


CHILD = """
import resource, sys, time, json
from hf_medvlm.data.prepare import PrepareArguments, prepare
args = PrepareArguments(input_path=sys.argv[1], image_root=sys.argv[2], output_dir=sys.argv[3], config_name="60k")
import psutil
baseline = psutil.Process().memory_info().rss / 2**20  # after importing datasets/transformers/pyarrow
start = time.perf_counter()
counts = prepare("llava_med_instruct", args)
elapsed = time.perf_counter() - start
print(json.dumps({"rows": counts["num_rows"], "shards": counts["num_shards"], "seconds": elapsed,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "baseline_rss_mb": baseline}))
"""


def run_size(n: int, work: Path, images: list[str]) -> dict:
    raw = work / f"raw_{n}.json"
    write_raw(raw, n, images)
    out = work / f"out_{n}"
    result = subprocess.run([sys.executable, "-c", CHILD, str(raw), str(work / "images"), str(out)],
                            capture_output=True, text=True, cwd=REPO, check=True)
    stats = json.loads(result.stdout.strip().splitlines()[-1])
    stats["raw_mb"] = raw.stat().st_size / 2**20
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs=2, default=[10_000, 50_000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="prepare_throughput_") as tmp:
        work = Path(tmp)
        images = make_image_pool(work / "images")
        rows = [(n, run_size(n, work, images)) for n in args.sizes]
    print(f"\n{'records':>8} {'raw MB':>7} {'shards':>6} {'seconds':>8} {'records/s':>10} {'RSS after imports MB':>20} {'peak RSS MB':>12}")
    for n, s in rows:
        print(f"{n:>8} {s['raw_mb']:>7.1f} {s['shards']:>6} {s['seconds']:>8.1f} {n / s['seconds']:>10.0f} "
              f"{s['baseline_rss_mb']:>20.0f} {s['peak_rss_mb']:>12.0f}")
    (small_n, small), (big_n, big) = rows
    growth = big["peak_rss_mb"] / small["peak_rss_mb"]
    verdict = "flat" if growth < 1.15 else "GROWS"
    print(f"\npeak RSS x{growth:.2f} for x{big_n / small_n:.0f} records: {verdict}")
    return 0 if verdict == "flat" else 1


if __name__ == "__main__":
    sys.exit(main())
