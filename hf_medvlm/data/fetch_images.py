"""Download PMC Open Access tarballs and extract only the figures a dataset needs (`hf-medvlm fetch-images`).

Input: `llava_med_image_urls.jsonl`-style records `{"pmc_tar_url", "image_file_path", "pair_id"}` (LLaVA-Med and
BioMed-VITAL share this list). Output: `{output_dir}/images/{pair_id}.jpg`, each verified to decode, plus
`failures.jsonl` naming every record that could not be fetched and why.

- Records are grouped by tarball; tarballs are fetched in parallel threads with retries and exponential backoff.
- A 404 falls back to `mirror_patterns` (format strings with `{url}`, `{path}` = URL path, `{name}` = file name).
- Resumable: an image already in `images/` is never fetched again, and a tarball whose images all exist is not
  downloaded. Files are written under temporary names and renamed, so an interrupted run leaves no half files.
- Tarballs are deleted after extraction unless `keep_tarballs`.
"""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import requests
from tqdm.auto import tqdm

__all__ = ["FetchImagesArguments", "FetchReport", "fetch_images", "read_pair_ids", "read_url_records"]

REQUIRED_KEYS = ("pmc_tar_url", "image_file_path", "pair_id")


@dataclass
class FetchImagesArguments:
    urls_file: str = field(metadata={"help": "JSONL with pmc_tar_url, image_file_path, pair_id per line (llava_med_image_urls.jsonl)."})
    output_dir: str = field(metadata={"help": "Folder for images/{pair_id}.jpg, tarballs/ and failures.jsonl."})
    pair_ids_file: str | None = field(default=None, metadata={"help": "Optional file of pair ids (one per line, or a dataset JSON with `id`/`image`) to fetch only those."})
    num_workers: int = field(default=8, metadata={"help": "Tarballs downloaded in parallel."})
    max_retries: int = field(default=3, metadata={"help": "Retries per URL after a network error, 5xx or truncated download."})
    backoff_seconds: float = field(default=2.0, metadata={"help": "First retry delay; doubles after each retry."})
    timeout_seconds: float = field(default=60.0, metadata={"help": "Connect/read timeout per request."})
    mirror_patterns: list[str] = field(default_factory=list, metadata={"help": "URL patterns tried after a 404, e.g. 'https://mirror.example/{path}' ({url}, {path}, {name})."})
    keep_tarballs: bool = field(default=False, metadata={"help": "Keep downloaded tarballs in tarballs/ instead of deleting them."})
    limit: int | None = field(default=None, metadata={"help": "Only the first N records (for a quick look)."})


@dataclass
class FetchReport:
    done: int = 0  # images extracted in this run
    already_present: int = 0  # skipped because images/{pair_id}.jpg existed
    failed: Counter = field(default_factory=Counter)  # reason -> count
    downloads: int = 0  # tarballs actually downloaded
    manifest: str | None = None

    def summary(self) -> str:
        failed = ", ".join(f"{k}={v}" for k, v in sorted(self.failed.items())) or "none"
        return (f"{self.done} images fetched, {self.already_present} already present, {self.downloads} tarballs "
                f"downloaded; failed: {failed}")


class _Failure(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


# ------------------------------------------------------------------------------------------------ input


def read_url_records(path: str | Path, limit: int | None = None) -> list[dict]:
    """Records of a URL list; a line missing a key is a clear error naming the line."""
    records = []
    with Path(path).open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            record = json.loads(line)
            missing = [k for k in REQUIRED_KEYS if not record.get(k)]
            if missing:
                raise ValueError(f"{path}:{line_number}: record lacks {missing}")
            records.append(record)
            if limit is not None and len(records) >= limit:
                break
    return records


def read_pair_ids(path: str | Path) -> set[str]:
    """Pair ids from a file of one id per line, or from a dataset JSON whose records name `<pair_id>.jpg`."""
    text = Path(path).read_text(encoding="utf-8")
    if text.lstrip().startswith("["):  # a dataset file: LLaVA-Med / BioMed-VITAL records name `<pair_id>.jpg`
        return {Path(str(r.get("image") or r.get("id"))).stem for r in json.loads(text)}
    return {line.strip() for line in text.splitlines() if line.strip()}


# --------------------------------------------------------------------------------------------- download


def _candidate_urls(url: str, mirror_patterns: list[str]) -> list[str]:
    parsed = urlparse(url)
    path = parsed.path.lstrip("/")
    return [url] + [p.format(url=url, path=path, name=Path(path).name) for p in mirror_patterns]


def _download_once(session: requests.Session, url: str, target: Path, timeout: float) -> None:
    part = target.with_name(target.name + ".part")
    try:
        _stream_to(session, url, part, timeout)
    except BaseException:
        part.unlink(missing_ok=True)  # never leave half a tarball behind
        raise
    part.replace(target)


def _stream_to(session: requests.Session, url: str, part: Path, timeout: float) -> None:
    with session.get(url, stream=True, timeout=timeout) as response:
        if response.status_code == 404:
            raise _Failure("http_404", f"{url} returned 404")
        if response.status_code >= 400:
            raise _Failure(f"http_{response.status_code}", f"{url} returned {response.status_code}")
        expected = int(response.headers.get("Content-Length") or -1)
        received = 0
        with part.open("wb") as handle:
            for chunk in response.iter_content(chunk_size=1 << 16):
                handle.write(chunk)
                received += len(chunk)
    if expected >= 0 and received != expected:
        raise _Failure("truncated_download", f"{url}: got {received} of {expected} bytes")


def _download(session, url: str, target: Path, args: FetchImagesArguments) -> str:
    """Try the URL then its mirrors; retry transient failures with backoff. Returns the URL that worked."""
    last: _Failure | None = None
    for candidate in _candidate_urls(url, args.mirror_patterns):
        delay = args.backoff_seconds
        for attempt in range(args.max_retries + 1):
            try:
                _download_once(session, candidate, target, args.timeout_seconds)
                return candidate
            except _Failure as err:
                last = err
                if err.reason == "http_404" or err.reason.startswith("http_4"):
                    break  # not transient: go to the next mirror
            except requests.Timeout as err:
                last = _Failure("timeout", f"{candidate}: {err}")
            except requests.exceptions.ChunkedEncodingError as err:  # body ended before Content-Length
                last = _Failure("truncated_download", f"{candidate}: {err}")
            except requests.ConnectionError as err:
                last = _Failure("connection_error", f"{candidate}: {err}")
            if attempt < args.max_retries:
                time.sleep(delay)
                delay *= 2
    raise last or _Failure("download_failed", url)


# ---------------------------------------------------------------------------------------------- extract


def _write_image(data: bytes, target: Path) -> None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except Exception as err:  # noqa: BLE001
        raise _Failure("undecodable_image", f"{target.name}: {type(err).__name__}: {err}") from None
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(target)


def _extract(tarball: Path, records: list[dict], images_dir: Path) -> list[tuple[dict, _Failure | None]]:
    try:
        archive = tarfile.open(tarball, "r:*")
    except (tarfile.TarError, OSError, EOFError) as err:
        raise _Failure("corrupt_tarball", f"{tarball.name}: {err}") from None
    results = []
    with archive:
        for record in records:
            try:
                member = archive.extractfile(record["image_file_path"])
                if member is None:
                    raise KeyError(record["image_file_path"])
                _write_image(member.read(), images_dir / f"{record['pair_id']}.jpg")
                results.append((record, None))
            except KeyError:
                results.append((record, _Failure("missing_in_tarball", f"{record['image_file_path']} not in "
                                                 f"{tarball.name}")))
            except (tarfile.TarError, OSError, EOFError) as err:
                results.append((record, _Failure("corrupt_tarball", f"{tarball.name}: {err}")))
            except _Failure as err:
                results.append((record, err))
    return results


def _fetch_tarball(session, url: str, records: list[dict], out: Path, args) -> tuple[list, bool]:
    tarball = out / "tarballs" / Path(urlparse(url).path).name
    downloaded = False
    if not tarball.exists():  # a kept tarball from an earlier run is reused
        _download(session, url, tarball, args)
        downloaded = True
    try:
        return _extract(tarball, records, out / "images"), downloaded
    finally:
        if not args.keep_tarballs:
            tarball.unlink(missing_ok=True)


# -------------------------------------------------------------------------------------------------- run


def _pending_by_tarball(records: list[dict], images_dir: Path, report: FetchReport) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        if (images_dir / f"{record['pair_id']}.jpg").exists():
            report.already_present += 1
        else:
            groups[record["pmc_tar_url"]].append(record)
    return groups


def _write_manifest(out: Path, failures: list[dict]) -> Path:
    path = out / "failures.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for failure in failures:
            handle.write(json.dumps(failure) + "\n")
    return path


def fetch_images(records, output_dir: str | Path, args: FetchImagesArguments | None = None, *,
                 progress: bool = True, **overrides) -> FetchReport:
    """Fetch the images of `records` (a list of URL records, or a path to the JSONL) into `output_dir/images/`."""
    args = args or FetchImagesArguments(urls_file=str(records) if not isinstance(records, list) else "",
                                        output_dir=str(output_dir))
    for key, value in overrides.items():
        setattr(args, key, value)
    records = records if isinstance(records, list) else read_url_records(records, args.limit)
    out = Path(output_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "tarballs").mkdir(exist_ok=True)
    report, failures, lock = FetchReport(), [], threading.Lock()
    groups = _pending_by_tarball(records, out / "images", report)
    session = requests.Session()
    bar = tqdm(total=sum(map(len, groups.values())), desc="fetching PMC images", unit="img", disable=not progress)

    def record_outcome(record, failure):
        with lock:
            if failure is None:
                report.done += 1
            else:
                report.failed[failure.reason] += 1
                failures.append({**{k: record[k] for k in REQUIRED_KEYS}, "reason": failure.reason,
                                 "detail": str(failure)})
            bar.update(1)

    def work(url, group):
        try:
            results, downloaded = _fetch_tarball(session, url, group, out, args)
        except _Failure as err:
            results, downloaded = [(record, err) for record in group], False
        with lock:
            report.downloads += int(downloaded)
        for record, failure in results:
            record_outcome(record, failure)

    with ThreadPoolExecutor(max_workers=max(1, args.num_workers)) as pool:
        for future in as_completed([pool.submit(work, url, group) for url, group in groups.items()]):
            future.result()
    bar.close()
    report.manifest = str(_write_manifest(out, failures))
    return report
