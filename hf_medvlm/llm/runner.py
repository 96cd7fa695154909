"""Run many chat requests concurrently into a resumable JSONL file keyed by id, with a token and cost report.

Each reply is appended (one `write` of one whole line, then flushed) the moment it arrives, so after a kill the file
holds every answer received; a rerun skips those ids and sends only the rest. Combined with the backend's on-disk
cache (written before the line), no request whose reply came back is ever sent again. Requests that were in flight
at the moment of the kill had no reply yet and are sent again.
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import suppress
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from tqdm.auto import tqdm

from ..files import atomic_write_text, read_jsonl
from .types import ChatBackendError, ChatRequest, request_key

__all__ = ["RunReport", "run_requests", "read_results"]

logger = logging.getLogger(__name__)


@dataclass
class RunReport:
    """What one `run_requests` call did. Token counts and cost cover replies fetched in this run (not cache hits)."""

    backend: str
    output_path: str
    total: int = 0
    done: int = 0
    skipped: int = 0
    cached: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated_cost_usd: float | None = None
    elapsed_s: float = 0.0
    failures: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "requests_per_s": round(self.done / self.elapsed_s, 3) if self.elapsed_s > 0 else 0.0}


def read_results(output_path: str | os.PathLike, *, repair: bool = False) -> dict[str, dict[str, Any]]:
    """The rows of a `run_requests` JSONL by id. A torn last line (a kill mid-write) is ignored, and cut off if
    `repair`; a broken line anywhere else is an error naming the file and line."""
    rows: dict[str, dict[str, Any]] = {}
    for number, row in read_jsonl(output_path, repair=repair, what="a result row"):
        if not isinstance(row, dict) or "id" not in row:
            raise ValueError(f"{output_path}, line {number}: not a result row (no 'id').")
        rows[str(row["id"])] = row
    return rows


class _Writer:
    """Appends result rows and keeps the report's counts; runs on the calling thread only."""

    def __init__(self, path: Path, report: RunReport, bar, max_consecutive_failures: int | None):
        self.file = open(path, "a", encoding="utf-8")
        self.report, self.bar = report, bar
        self.max_consecutive_failures = max_consecutive_failures
        self.consecutive_failures = 0

    def record(self, job_id: str, key: str, future) -> None:
        try:
            response = future.result()
        except Exception as err:  # noqa: BLE001 - a failed request is counted and reported, the run goes on
            self.report.failed += 1
            self.report.failures.append({"id": job_id, "error": f"{type(err).__name__}: {err}"})
            logger.warning("request %r failed: %s", job_id, err)
            self.consecutive_failures += 1
            if getattr(err, "fatal", False):
                raise
            if self.max_consecutive_failures and self.consecutive_failures >= self.max_consecutive_failures:
                raise ChatBackendError(
                    f"stopping after {self.consecutive_failures} failed requests in a row (is the endpoint up?); "
                    f"last error: {type(err).__name__}: {err}"
                ) from err
        else:
            self.consecutive_failures = 0
            row = {"id": job_id, "request_key": key, **asdict(response)}
            self.file.write(json.dumps(row, ensure_ascii=False) + "\n")
            self.file.flush()
            self.report.done += 1
            if response.cached:
                self.report.cached += 1
            else:
                self.report.prompt_tokens += response.prompt_tokens
                self.report.completion_tokens += response.completion_tokens
        self.bar.update(1)


def _drain(pending: dict, writer: _Writer, until: int) -> None:
    while len(pending) > until:
        finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
        for future in finished:
            writer.record(*pending.pop(future), future)


def run_requests(
    jobs: Iterable[tuple[str, ChatRequest]],
    backend,
    *,
    output_path: str | os.PathLike,
    concurrency: int = 8,
    desc: str | None = None,
    progress: bool = True,
    max_consecutive_failures: int | None = 20,
) -> RunReport:
    """Send `(id, ChatRequest)` jobs through `backend.complete` with `concurrency` threads, appending
    `{"id", "text", "prompt_tokens", "completion_tokens", "model", "cached", ...}` rows to `output_path` (JSONL).

    Ids already in the file are skipped (resume). An id answered earlier for a different request is an error rather
    than a silently stale answer. Failed requests are counted in the report (not written), so a rerun retries them.
    The report is also written to `<output stem>.report.json` beside the output.
    A `fatal` error (401, 403, 404: no request can pass) stops the run at once, and so do
    `max_consecutive_failures` failures in a row (a dead endpoint): `ChatBackendError`, answers received so far kept.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}.")
    path = Path(output_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    done_rows = read_results(path, repair=True)
    report = RunReport(backend=str(getattr(backend, "name", type(backend).__name__)), output_path=str(path))
    total = len(jobs) if hasattr(jobs, "__len__") else None
    start = time.perf_counter()
    bar = tqdm(total=total, desc=desc or "chat requests", unit="req", disable=not progress, dynamic_ncols=True)
    writer = _Writer(path, report, bar, max_consecutive_failures)
    pending: dict = {}
    seen: set[str] = set()
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="chat")
    try:
        for job_id, request in jobs:
            job_id = _job_id(job_id, seen)
            key = request_key(request, report.backend)
            report.total += 1
            if job_id in done_rows:
                if done_rows[job_id].get("request_key") not in (None, key):
                    raise ValueError(f"{path}: id {job_id!r} was answered for a different request (prompt, model "
                                     "or settings changed); use a new output path, or delete the file to redo "
                                     "everything.")
                report.skipped += 1
                bar.update(1)
                continue
            _drain(pending, writer, until=2 * concurrency - 1)  # bounded queue: jobs may be a long generator
            pending[pool.submit(backend.complete, request)] = (job_id, key)
        _drain(pending, writer, until=0)
    finally:
        # On an interrupt, keep every reply that already arrived; requests not yet started are never sent.
        with suppress(ChatBackendError):  # already stopping; the first error is the one raised
            for future in [f for f in pending if f.done()]:
                writer.record(*pending.pop(future), future)
        pool.shutdown(wait=False, cancel_futures=True)
        writer.file.close()
        bar.close()
        report.elapsed_s = round(time.perf_counter() - start, 3)
        estimate = getattr(backend, "estimate_cost", None)
        report.estimated_cost_usd = estimate(report.prompt_tokens, report.completion_tokens) if estimate else None
        atomic_write_text(path.with_name(f"{path.stem}.report.json"), json.dumps(report.to_dict(), indent=2) + "\n")
    return report


def _job_id(job_id, seen: set[str]) -> str:
    if not isinstance(job_id, (str, int)):
        raise ValueError(f"job ids must be str or int, got {type(job_id).__name__} ({job_id!r}).")
    job_id = str(job_id)
    if job_id in seen:
        raise ValueError(f"duplicate job id {job_id!r}: ids key the resumable output and must be unique.")
    seen.add(job_id)
    return job_id
