"""Download PMC Open Access tarballs and extract only the figures a dataset needs (`hf-medvlm fetch-images`).

Input: `llava_med_image_urls.jsonl`-style records `{"pmc_tar_url", "image_file_path", "pair_id"}` (LLaVA-Med and
BioMed-VITAL share this list). Output: `{output_dir}/images/{pair_id}.jpg`, each verified to decode, plus
`failures.jsonl` naming every record that could not be fetched and why. Retries, mirrors, resuming and the refusal
of unsafe paths are described in docs/data.md ("Fetching PMC images"); tar members are checked with `tarfile`'s
`data` extraction filter, which also confines an absolute member name (its `/` stripped).
"""

from __future__ import annotations

import itertools
import json
import tarfile
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlparse

import requests
from requests.adapters import HTTPAdapter
from tqdm.auto import tqdm
from urllib3.exceptions import MaxRetryError
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util import Retry

from ..files import atomic_write_text

__all__ = ["FetchImagesArguments", "FetchReport", "fetch_images", "read_pair_ids", "read_url_records"]

REQUIRED_KEYS = ("pmc_tar_url", "image_file_path", "pair_id")
RETRY_STATUSES = (429, 500, 502, 503, 504)


@dataclass
class FetchImagesArguments:
    urls_file: str = field(metadata={"help": "JSONL with pmc_tar_url, image_file_path, pair_id per line (llava_med_image_urls.jsonl)."})
    output_dir: str = field(metadata={"help": "Folder for images/{pair_id}.jpg, tarballs/ and failures.jsonl."})
    pair_ids_file: str | None = field(default=None, metadata={"help": "Optional file of pair ids (one per line, or a dataset JSON with `id`/`image`) to fetch only those."})
    num_workers: int = field(default=8, metadata={"help": "Tarballs downloaded in parallel."})
    max_retries: int = field(default=3, metadata={"help": "Retries per URL after a connection error, a 429/5xx answer or a truncated download (a 404 is not retried)."})
    backoff_seconds: float = field(default=2.0, metadata={"help": "urllib3 Retry back-off factor: the k-th consecutive retry waits backoff * 2^(k-1) s (the first retries at once); a Retry-After header overrides it."})
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
    def __init__(self, reason: str, detail: str, retryable: bool = False):
        super().__init__(detail)
        self.reason, self.retryable = reason, retryable


# ------------------------------------------------------------------------------------------------ input


def read_url_records(path: str | Path, limit: int | None = None) -> list[dict]:
    """Records of a URL list; a malformed line is a `ValueError` naming the file and line number."""
    with Path(path).open("rb") as handle:  # decoded per line, so that an encoding error has a line number
        lines = ((number, raw) for number, raw in enumerate(handle, 1) if raw.strip())
        return [_parse_record(raw, f"{path}: line {number}") for number, raw in itertools.islice(lines, limit)]


def _parse_record(raw: bytes, where: str) -> dict:
    try:
        record = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"{where} is not UTF-8 ({err.reason} at byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{where} is not valid JSON ({err.msg}, column {err.colno})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{where} is a {type(record).__name__}, not an object with {list(REQUIRED_KEYS)}")
    for key in REQUIRED_KEYS:
        if not isinstance(record.get(key), str) or not record[key]:
            raise ValueError(f"{where}: {key} must be a non-empty string, got {record.get(key)!r}")
    return record


def read_pair_ids(path: str | Path) -> set[str]:
    """Pair ids from a file of one id per line, or from a dataset JSON whose records name `<pair_id>.jpg`."""
    text = Path(path).read_text(encoding="utf-8")
    if text.lstrip().startswith("["):  # a dataset file: LLaVA-Med / BioMed-VITAL records name `<pair_id>.jpg`
        return {Path(str(r.get("image") or r.get("id"))).stem for r in json.loads(text)}
    return {line.strip() for line in text.splitlines() if line.strip()}


def _tarball_name(url: str) -> str:
    return Path(urlparse(url).path).name


def _unsafe_path(record: dict) -> _Failure | None:
    """A pair_id or tarball name that is not a plain file name would write outside images/ or tarballs/."""
    for key, name in (("pair_id", record["pair_id"]), ("pmc_tar_url", _tarball_name(record["pmc_tar_url"]))):
        if name in ("", ".", "..") or any(c in name for c in "/\\\0"):
            return _Failure("unsafe_path", f"{key} {record[key]!r} does not give a plain file name; not fetched")
    return None


# --------------------------------------------------------------------------------------------- download


def _session(args: FetchImagesArguments) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=_retry_policy(args), pool_maxsize=max(10, args.num_workers))
    for scheme in ("http://", "https://"):
        session.mount(scheme, adapter)
    return session


def _retry_policy(args: FetchImagesArguments) -> Retry:
    return Retry(total=args.max_retries, backoff_factor=args.backoff_seconds, status_forcelist=RETRY_STATUSES,
                 allowed_methods={"GET"}, raise_on_status=False)  # the last 5xx answer is reported, not raised


def _network_failure(err: requests.RequestException, url: str, retryable: bool) -> _Failure:
    cause = getattr(err.args[0], "reason", err.args[0]) if err.args else err  # what urllib3's last retry hit
    if isinstance(err, requests.Timeout) or isinstance(cause, Urllib3Timeout):
        return _Failure("timeout", f"{url}: {cause}", retryable)
    if isinstance(err, requests.exceptions.ChunkedEncodingError):  # body ended before Content-Length
        return _Failure("truncated_download", f"{url}: {cause}", retryable)
    return _Failure("connection_error", f"{url}: {cause}", retryable)


def _stream_to(session: requests.Session, url: str, part: Path, timeout: float) -> None:
    try:
        response = session.get(url, stream=True, timeout=timeout)  # urllib3 has already retried what it can
    except requests.RequestException as err:
        raise _network_failure(err, url, retryable=False) from None
    with response:
        if response.status_code >= 400:
            raise _Failure(f"http_{response.status_code}", f"{url} returned {response.status_code}")
        try:
            with part.open("wb") as handle:
                for chunk in response.iter_content(chunk_size=1 << 16):
                    handle.write(chunk)
        except requests.RequestException as err:  # urllib3 enforces Content-Length: a short body raises here
            raise _network_failure(err, url, retryable=True) from None


def _download_url(session, url: str, target: Path, args: FetchImagesArguments) -> Path:
    """One URL to `target` via `target.part`; a body cut short is retried under the same urllib3 Retry policy."""
    part, retry = target.with_name(target.name + ".part"), _retry_policy(args)
    while True:
        try:
            _stream_to(session, url, part, args.timeout_seconds)
            return part.replace(target)
        except BaseException as err:
            part.unlink(missing_ok=True)  # never leave half a tarball behind
            if not getattr(err, "retryable", False):
                raise
            try:
                retry = retry.increment(method="GET", url=url, error=err)
            except MaxRetryError:
                raise err from None
        retry.sleep()


def _download(session, url: str, target: Path, args: FetchImagesArguments) -> Path:
    """Try the URL, then its mirrors; the last one's failure is raised."""
    path = urlparse(url).path.lstrip("/")
    mirrors = [p.format(url=url, path=path, name=Path(path).name) for p in args.mirror_patterns]
    for i, candidate in enumerate([url, *mirrors]):
        try:
            return _download_url(session, candidate, target, args)
        except _Failure:
            if i == len(mirrors):
                raise


# ---------------------------------------------------------------------------------------------- extract


def _extract_one(archive, tarball: Path, record: dict, images_dir: Path) -> _Failure | None:
    from .schema import RecordError, check_image_bytes  # imports `datasets`, which `fetch-images --help` need not

    source = f"{record['image_file_path']} in {tarball.name}"
    try:
        member = archive.getmember(record["image_file_path"])
        tarfile.data_filter(member, str(images_dir))  # raises tarfile.FilterError for absolute, `..`, links out
        handle = archive.extractfile(member)
        if handle is None:
            raise KeyError(member.name)  # a directory or special file
        data = handle.read()
        check_image_bytes(data, f"{source} (pair_id {record['pair_id']})")
        tmp = images_dir / f"{record['pair_id']}.jpg.tmp"
        tmp.write_bytes(data)
        tmp.replace(tmp.with_suffix(""))
    except KeyError:
        return _Failure("missing_in_tarball", f"{source}: no such member")
    except tarfile.FilterError as err:
        return _Failure("unsafe_tar_member", f"{source}: refused: {err}")
    except (tarfile.TarError, OSError, EOFError) as err:
        return _Failure("corrupt_tarball", f"{tarball.name}: {err}")
    except RecordError as err:
        return _Failure(err.reason, str(err))
    return None


def _fetch_tarball(session, url: str, records: list[dict], out: Path, args) -> tuple[list, bool]:
    """Each record with its failure (None when extracted), and whether the tarball was downloaded."""
    tarball = out / "tarballs" / _tarball_name(url)
    downloaded = not tarball.exists()  # a kept tarball from an earlier run is reused
    try:
        if downloaded:
            _download(session, url, tarball, args)
        try:
            archive = tarfile.open(tarball, "r:*")
        except (tarfile.TarError, OSError, EOFError) as err:
            raise _Failure("corrupt_tarball", f"{tarball.name}: {err}") from None
        with archive:
            results = [(record, _extract_one(archive, tarball, record, out / "images")) for record in records]
        return results, downloaded
    except _Failure as err:
        return [(record, err) for record in records], False
    finally:
        if not args.keep_tarballs:
            tarball.unlink(missing_ok=True)


# -------------------------------------------------------------------------------------------------- run


def _plan(records: list[dict], images_dir: Path, report: FetchReport) -> tuple[dict[str, list[dict]], list]:
    """Pending records grouped by tarball, and the refused ones with their failure."""
    groups: dict[str, list[dict]] = defaultdict(list)
    refused = []
    for record in records:
        unsafe = _unsafe_path(record)
        if unsafe is not None:
            refused.append((record, unsafe))
        elif (images_dir / f"{record['pair_id']}.jpg").exists():
            report.already_present += 1
        else:
            groups[record["pmc_tar_url"]].append(record)
    return groups, refused


def fetch_images(records, output_dir: str | Path, args: FetchImagesArguments | None = None, *,
                 progress: bool = True, **overrides) -> FetchReport:
    """Fetch the images of `records` (a list of URL records, or a path to the JSONL) into `output_dir/images/`."""
    default = FetchImagesArguments(urls_file="" if isinstance(records, list) else str(records),
                                   output_dir=str(output_dir))
    args = replace(args or default, **overrides)
    records = records if isinstance(records, list) else read_url_records(records, args.limit)
    out = Path(output_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "tarballs").mkdir(exist_ok=True)
    # `*.part` / `*.tmp` are only ever a killed run's leftovers: finished files are renamed away from them
    for stale in [*(out / "tarballs").glob("*.part"), *(out / "images").glob("*.tmp")]:
        stale.unlink(missing_ok=True)
    report = FetchReport()
    groups, outcomes = _plan(records, out / "images", report)
    session = _session(args)
    bar = tqdm(total=len(outcomes) + sum(map(len, groups.values())), initial=len(outcomes),
               desc="fetching PMC images", unit="img", disable=not progress)
    with ThreadPoolExecutor(max_workers=max(1, args.num_workers)) as pool:
        futures = [pool.submit(_fetch_tarball, session, url, group, out, args) for url, group in groups.items()]
        for future in as_completed(futures):  # tallied here, in the main thread, as each tarball finishes
            results, downloaded = future.result()
            report.downloads += downloaded
            outcomes += results
            bar.update(len(results))
    bar.close()
    failures = [{**{k: record[k] for k in REQUIRED_KEYS}, "reason": failure.reason, "detail": str(failure)}
                for record, failure in outcomes if failure is not None]
    report.done, report.failed = len(outcomes) - len(failures), Counter(f["reason"] for f in failures)
    report.manifest = str(atomic_write_text(out / "failures.jsonl", "".join(json.dumps(f) + "\n" for f in failures)))
    return report
