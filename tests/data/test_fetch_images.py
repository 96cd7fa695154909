"""`fetch-images` against a real loopback HTTP server serving generated PMC-style tarballs."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from PIL import Image

from hf_medvlm.data.fetch_images import fetch_images
from tests.data.conftest import jpeg_bytes, make_tarball

FAST = dict(max_retries=1, backoff_seconds=0.01, timeout_seconds=5, num_workers=4, progress=False)


def _record(server, pmcid, member, pair_id, prefix="oa_package/aa/bb"):
    return {"pmc_tar_url": f"{server.url}/pub/pmc/{prefix}/{pmcid}.tar.gz",
            "image_file_path": f"{pmcid}/{member}", "pair_id": pair_id}


def _serve(server, pmcid, members, kind="ok", prefix="oa_package/aa/bb", delay=0.0):
    body = make_tarball({f"{pmcid}/{name}": data for name, data in members.items()})
    path = f"/pub/pmc/{prefix}/{pmcid}.tar.gz"
    server.routes[path] = (kind, body, delay) if kind == "slow" else (kind, body)
    return path


def test_every_failure_kind_is_reported_and_good_images_extracted(pmc_server, tmp_path):
    s = pmc_server
    _serve(s, "PMC1", {"f1.jpg": jpeg_bytes(1), "f2.jpg": jpeg_bytes(2), "unused.jpg": jpeg_bytes(3)})
    _serve(s, "PMC2", {"f1.jpg": jpeg_bytes(4)}, kind="truncated")
    s.routes["/pub/pmc/oa_package/aa/bb/PMC3.tar.gz"] = ("ok", b"this is not a tar archive at all" * 10)
    _serve(s, "PMC4", {"other.jpg": jpeg_bytes(5)})
    _serve(s, "PMC5", {"f1.jpg": b"\xff\xd8 not really a jpeg"})
    _serve(s, "PMC7", {"f1.jpg": jpeg_bytes(7)}, kind="slow", delay=0.3)
    records = [_record(s, "PMC1", "f1.jpg", "1_F1"), _record(s, "PMC1", "f2.jpg", "1_F2"),
               _record(s, "PMC2", "f1.jpg", "2_F1"), _record(s, "PMC3", "f1.jpg", "3_F1"),
               _record(s, "PMC4", "f1.jpg", "4_F1"), _record(s, "PMC5", "f1.jpg", "5_F1"),
               _record(s, "PMC6", "f1.jpg", "6_F1"), _record(s, "PMC7", "f1.jpg", "7_F1")]
    report = fetch_images(records, tmp_path, **FAST)
    assert report.done == 3
    assert dict(report.failed) == {"truncated_download": 1, "corrupt_tarball": 1, "missing_in_tarball": 1,
                                   "undecodable_image": 1, "http_404": 1}
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == ["1_F1.jpg", "1_F2.jpg", "7_F1.jpg"]
    assert Image.open(tmp_path / "images" / "1_F2.jpg").size == (16, 16)
    manifest = [json.loads(line) for line in (tmp_path / "failures.jsonl").read_text().splitlines()]
    assert {m["pair_id"]: m["reason"] for m in manifest}["4_F1"] == "missing_in_tarball"
    assert s.requests["/pub/pmc/oa_package/aa/bb/PMC1.tar.gz"] == 1  # one download for two figures
    assert s.requests["/pub/pmc/oa_package/aa/bb/PMC2.tar.gz"] == 2  # truncated: retried once
    assert not list((tmp_path / "tarballs").iterdir())  # removed after extraction


def test_404_falls_back_to_mirror_and_tarballs_can_be_kept(pmc_server, tmp_path):
    s = pmc_server
    path = _serve(s, "PMC9", {"f1.jpg": jpeg_bytes(9)})
    s.routes["/mirror" + path] = s.routes.pop(path)  # the primary URL now 404s; only the mirror has it
    record = _record(s, "PMC9", "f1.jpg", "9_F1")
    report = fetch_images([record], tmp_path, mirror_patterns=[s.url + "/mirror/{path}"],
                          keep_tarballs=True, **FAST)
    assert report.done == 1 and not report.failed
    assert (tmp_path / "tarballs" / "PMC9.tar.gz").exists()
    assert s.requests[path] == 1 and s.requests["/mirror" + path] == 1


def test_slow_response_past_the_timeout_fails_with_a_reason(pmc_server, tmp_path):
    _serve(pmc_server, "PMC8", {"f1.jpg": jpeg_bytes(8)}, kind="slow", delay=1.5)
    report = fetch_images([_record(pmc_server, "PMC8", "f1.jpg", "8_F1")], tmp_path,
                          **dict(FAST, timeout_seconds=0.3))
    assert dict(report.failed) == {"timeout": 1}


@pytest.mark.integration
def test_interrupted_run_resumes_without_redownloading(pmc_server, tmp_path):
    s = pmc_server
    records = []
    for i in range(4):
        # the last tarball hangs long enough for the first run to be killed while it waits
        _serve(s, f"PMC{i}", {"f.jpg": jpeg_bytes(i)}, kind="slow" if i == 3 else "ok", delay=60 if i == 3 else 0)
        records.append(_record(s, f"PMC{i}", "f.jpg", f"{i}_F"))
    urls = tmp_path / "urls.jsonl"
    urls.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "hf_medvlm", "fetch-images", "--urls_file", str(urls),
                             "--output_dir", str(out), "--num_workers", "1", "--max_retries", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / "images").glob("*.jpg"))) < 3:
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    assert len(list((out / "images").glob("*.jpg"))) == 3
    s.routes["/pub/pmc/oa_package/aa/bb/PMC3.tar.gz"] = ("ok", s.routes["/pub/pmc/oa_package/aa/bb/PMC3.tar.gz"][1])
    report = fetch_images(str(urls), out, **FAST)
    assert report.already_present == 3 and report.done == 1 and report.downloads == 1
    for i in range(3):
        assert s.requests[f"/pub/pmc/oa_package/aa/bb/PMC{i}.tar.gz"] == 1
