"""Benchmark: pushing a large Parquet dataset folder to the loopback Hub keeps client memory flat.

Writes N text rows (default 1,000,000) as Parquet shards with pyarrow, batch by batch, then pushes the folder with
`hf_medvlm.hub.push_dataset_folder` to a loopback Hub running in a separate process, sampling this process's RSS.
Prints: folder size, push time and throughput, peak RSS increase during the push versus the data size, and, for
comparison, the RSS increase of holding the same rows in memory as a Python list (what a non-streaming push holds).

    python benchmarks/bench_hub_push.py --rows 1000000 --rows_per_shard 100000
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


PORT = _free_port()
# Read by huggingface_hub at import time: set before anything imports it.
os.environ.update(HF_ENDPOINT=f"http://127.0.0.1:{PORT}", HF_HUB_DISABLE_XET="1", HF_TOKEN="bench",
                  HF_HOME=tempfile.mkdtemp(prefix="bench_hub_home_"), HF_HUB_DISABLE_PROGRESS_BARS="1",
                  HF_HUB_DISABLE_TELEMETRY="1")

import psutil  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402


def _rows(start: int, stop: int) -> dict:
    ids = [f"row-{i:07d}" for i in range(start, stop)]
    return {"id": ids, "question": [f"What abnormality is visible in study {i}?" for i in range(start, stop)],
            "answer": [f"Finding number {i % 97} in the left lower lobe." for i in range(start, stop)],
            # Incompressible bytes, so that the Parquet folder is large (~100 MiB per million rows) and a memory
            # footprint proportional to the data would show.
            "payload": [os.urandom(48).hex() for _ in range(start, stop)]}


def write_folder(folder: Path, rows: int, rows_per_shard: int) -> int:
    shards = (rows + rows_per_shard - 1) // rows_per_shard
    (folder / "big").mkdir(parents=True)
    for s in range(shards):
        table = pa.table(_rows(s * rows_per_shard, min(rows, (s + 1) * rows_per_shard)))
        pq.write_table(table, folder / "big" / f"train-{s:05d}-of-{shards:05d}.parquet")
    (folder / "README.md").write_text(
        "---\nlicense: cc0-1.0\nconfigs:\n- config_name: big\n  data_files:\n  - split: train\n"
        "    path: big/train-*\n---\n\n# Synthetic benchmark rows\n")
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


class PeakRSS:
    def __init__(self):
        self.proc, self.peak, self._stop = psutil.Process(), 0, threading.Event()

    def __enter__(self):
        self.base = self.proc.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.01)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def increase_mb(self) -> float:
        return (self.peak - self.base) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rows_per_shard", type=int, default=100_000)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_hub_"))
    from hf_medvlm.testing.hub_server import start_hub_server

    start = time.perf_counter()
    probe = start_hub_server(work / "probe", port=0)
    start_ms = (time.perf_counter() - start) * 1000
    probe.stop()
    print(f"loopback Hub start  : {start_ms:.1f} ms (in process, until the socket accepts connections)")
    server = subprocess.Popen([sys.executable, "-m", "hf_medvlm.testing.hub_server", "--root", str(work / "hub"),
                               "--port", str(PORT)], stdout=subprocess.PIPE, text=True)
    server.stdout.readline()  # "listening on ..." once the socket accepts connections
    try:
        start = time.perf_counter()
        size = write_folder(work / "data", args.rows, args.rows_per_shard)
        print(f"wrote {args.rows:,} rows in {len(list((work / 'data' / 'big').iterdir()))} shards, "
              f"{size / 2**20:.1f} MiB, in {time.perf_counter() - start:.1f}s")

        from hf_medvlm.hub import push_dataset_folder

        with PeakRSS() as push_mem:
            start = time.perf_counter()
            push_dataset_folder(work / "data", "bench/big")
            push_s = time.perf_counter() - start
        with PeakRSS() as list_mem:
            held = [row for s in range(0, args.rows, args.rows_per_shard)
                    for row in zip(*_rows(s, min(args.rows, s + args.rows_per_shard)).values())]
        del held
        print(f"push_dataset_folder : {push_s:.1f}s ({size / 2**20 / push_s:.1f} MiB/s), "
              f"peak RSS +{push_mem.increase_mb:.0f} MiB for {size / 2**20:.0f} MiB of Parquet")
        print(f"rows held in memory : peak RSS +{list_mem.increase_mb:.0f} MiB (what an in-memory push would hold)")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
