"""`fetch-images` against a real loopback HTTP server serving generated PMC-style tarballs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import types

import pytest
import urllib3.util.retry
from PIL import Image

from hf_medvlm.data.fetch_images import fetch_images, read_url_records
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


def _manifest(out):
    return {m["pair_id"]: m for m in map(json.loads, (out / "failures.jsonl").read_text().splitlines())}


def test_retry_after_is_honoured_and_5xx_retried_but_404_is_not(pmc_server, tmp_path, monkeypatch):
    s = pmc_server
    slept = []  # urllib3's own sleeps, recorded instead of waited for
    monkeypatch.setattr(urllib3.util.retry, "time", types.SimpleNamespace(sleep=slept.append, time=time.time))
    path = _serve(s, "PMC10", {"f1.jpg": jpeg_bytes(10)})
    s.routes[path] = [("status", 429, {"Retry-After": "7"}), s.routes[path]]
    s.routes["/pub/pmc/oa_package/aa/bb/PMC11.tar.gz"] = ("status", 503, {})
    records = [_record(s, "PMC10", "f1.jpg", "10_F1"), _record(s, "PMC11", "f1.jpg", "11_F1"),
               _record(s, "PMC12", "f1.jpg", "12_F1")]  # PMC12 is not served: 404
    report = fetch_images(records, tmp_path, **dict(FAST, max_retries=2))
    assert report.done == 1 and dict(report.failed) == {"http_503": 1, "http_404": 1}
    assert 7 in slept  # the server's Retry-After, not the 0.01 s back-off
    assert s.requests[path] == 2
    assert s.requests["/pub/pmc/oa_package/aa/bb/PMC11.tar.gz"] == 3  # first try + max_retries
    assert s.requests["/pub/pmc/oa_package/aa/bb/PMC12.tar.gz"] == 1  # a 404 is final


def test_pair_ids_that_would_escape_output_dir_are_refused_and_counted(pmc_server, tmp_path):
    s = pmc_server
    _serve(s, "PMC13", {"f1.jpg": jpeg_bytes(13)})
    out = tmp_path / "a" / "b" / "out"
    escapes = ["../../escaped", str(tmp_path / "absolute_escape"), "..", "sub/dir"]
    records = [_record(s, "PMC13", "f1.jpg", pair_id) for pair_id in ["13_F1", *escapes]]
    report = fetch_images(records, out, **FAST)
    assert report.done == 1 and dict(report.failed) == {"unsafe_path": 4}
    assert sorted(p.name for p in tmp_path.rglob("*.jpg")) == ["13_F1.jpg"]
    manifest = _manifest(out)
    assert {pair_id: manifest[pair_id]["reason"] for pair_id in escapes} == dict.fromkeys(escapes, "unsafe_path")
    assert "../../escaped" in manifest["../../escaped"]["detail"]


def test_tar_members_are_read_under_the_data_filter_rules(pmc_server, tmp_path):
    s = pmc_server
    body = make_tarball({"PMC14/real.jpg": jpeg_bytes(14), "/PMC14/absolute.jpg": jpeg_bytes(15),
                         "PMC14/../../up.jpg": jpeg_bytes(16)},
                        symlinks={"PMC14/alias.jpg": "real.jpg", "PMC14/out.jpg": "../../../etc/hosts",
                                  "PMC14/abslink.jpg": "/etc/hosts"})
    s.routes["/pub/pmc/oa_package/aa/bb/PMC14.tar.gz"] = ("ok", body)
    members = {"14_real": "PMC14/real.jpg", "14_alias": "PMC14/alias.jpg", "14_abs": "/PMC14/absolute.jpg",
               "14_up": "PMC14/../../up.jpg", "14_out": "PMC14/out.jpg", "14_abslink": "PMC14/abslink.jpg"}
    records = [dict(_record(s, "PMC14", "x", pair_id), image_file_path=m) for pair_id, m in members.items()]
    report = fetch_images(records, tmp_path, **FAST)
    # The data filter confines an absolute name (strips its "/"), so that member is read like any other; it refuses
    # "..", a link pointing out and an absolute link.
    assert report.done == 3 and dict(report.failed) == {"unsafe_tar_member": 3}
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == ["14_abs.jpg", "14_alias.jpg", "14_real.jpg"]
    details = {k: v["detail"] for k, v in _manifest(tmp_path).items()}
    assert set(details) == {"14_up", "14_out", "14_abslink"}
    assert "PMC14/../../up.jpg in PMC14.tar.gz" in details["14_up"] and "outside" in details["14_out"]


def test_undecodable_image_error_names_the_member_and_tarball(pmc_server, tmp_path):
    _serve(pmc_server, "PMC5", {"f1.jpg": b"\xff\xd8 not really a jpeg"})
    report = fetch_images([_record(pmc_server, "PMC5", "f1.jpg", "5_F1")], tmp_path, **FAST)
    assert dict(report.failed) == {"undecodable_image": 1}
    detail = _manifest(tmp_path)["5_F1"]["detail"]
    assert "PMC5/f1.jpg" in detail and "PMC5.tar.gz" in detail and "BytesIO" not in detail


def test_malformed_url_list_lines_are_named_with_file_and_line(tmp_path):
    good = json.dumps({"pmc_tar_url": "http://x/PMC1.tar.gz", "image_file_path": "PMC1/a.jpg", "pair_id": "1_A"})
    urls = tmp_path / "urls.jsonl"
    for bad, message in [("{not json", "line 4 is not valid JSON"), ("[1, 2]", "line 4 is a list, not an object"),
                         (json.dumps({"pmc_tar_url": "u", "image_file_path": "p", "pair_id": 5}),
                          "line 4: pair_id must be a non-empty string")]:
        urls.write_text(f"{good}\n{good}\n\n{bad}\n{good}\n")
        with pytest.raises(ValueError, match=f"^{urls}: {message}"):
            read_url_records(urls)
    urls.write_bytes(f"{good}\n".encode() + b'{"pair_id": "caf\xe9"}\n')
    with pytest.raises(ValueError, match=f"^{urls}: line 2 is not UTF-8"):
        read_url_records(urls)


def test_stale_temporaries_of_a_killed_run_are_removed(tmp_path):
    (tmp_path / "tarballs").mkdir()
    (tmp_path / "images").mkdir()
    (tmp_path / "tarballs" / "PMC1.tar.gz.part").write_bytes(b"half")
    (tmp_path / "images" / "1_F1.jpg.tmp").write_bytes(b"half")
    fetch_images([], tmp_path, **FAST)
    assert not list(tmp_path.rglob("*.part")) and not list(tmp_path.rglob("*.tmp"))


@pytest.mark.integration
def test_kill_9_mid_download_leaves_nothing_complete_looking_and_rerun_cleans_up(pmc_server, tmp_path):
    s = pmc_server
    path = _serve(s, "PMC15", {"f1.jpg": jpeg_bytes(15), "big.bin": os.urandom(1 << 20)})
    s.routes[path] = ("stall", s.routes[path][1], 60)  # half the body, then nothing
    urls = tmp_path / "urls.jsonl"
    urls.write_text(json.dumps(_record(s, "PMC15", "f1.jpg", "15_F1")) + "\n")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "hf_medvlm", "fetch-images", "--urls_file", str(urls),
                             "--output_dir", str(out), "--max_retries", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    part = out / "tarballs" / "PMC15.tar.gz.part"
    deadline = time.time() + 120
    while time.time() < deadline and not (part.exists() and part.stat().st_size > 0):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert part.exists()  # killed mid-download: only the temporary name exists
    assert not (out / "tarballs" / "PMC15.tar.gz").exists() and not list((out / "images").iterdir())
    assert not (out / "failures.jsonl").exists()
    # The rerun asks for another figure only (as with a narrower --pair_ids_file): the stale part must go all the same.
    _serve(s, "PMC16", {"f1.jpg": jpeg_bytes(16)})
    report = fetch_images([_record(s, "PMC16", "f1.jpg", "16_F1")], out, **FAST)
    assert report.done == 1 and not report.failed
    assert not list((out / "tarballs").iterdir())
