"""`fetch-images` killed mid-download (a tarball half received), mid-extraction (an image written but not renamed)
and while writing its failure manifest; the rerun fetches only what is missing and ends with the same images."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hf_medvlm.commands.fetch_images import main as fetch_main
from hf_medvlm.testing.kill import file_size_at_least
from tests.data.conftest import _PMCServer, jpeg_bytes, make_tarball
from tests.faults.helpers import assert_no_temporaries, fault, kill_at, kill_when, tree_bytes

pytestmark = [pytest.mark.faults, pytest.mark.integration]

PREFIX = "/pub/pmc/oa_package/aa/bb"


@pytest.fixture
def pmc(tmp_path):
    """Four tarballs of two figures each, plus a record whose tarball is gone (404): a failure in the manifest."""
    server = _PMCServer()
    records = []
    padding = np.random.default_rng(0).bytes(200_000)  # incompressible: half a tarball is several 64 KB chunks
    for t in range(4):
        members = {f"PMC{t}/f{k}.jpg": jpeg_bytes(10 * t + k) for k in range(2)}
        body = make_tarball({**members, f"PMC{t}/supplement.bin": padding})
        server.routes[f"{PREFIX}/PMC{t}.tar.gz"] = ("ok", body)
        records += [{"pmc_tar_url": f"{server.url}{PREFIX}/PMC{t}.tar.gz", "image_file_path": f"PMC{t}/f{k}.jpg",
                     "pair_id": f"{t}_F{k}"} for k in range(2)]
    records.append({"pmc_tar_url": f"{server.url}{PREFIX}/PMC9.tar.gz", "image_file_path": "PMC9/f0.jpg",
                    "pair_id": "9_F0"})
    urls = tmp_path / "urls.jsonl"
    urls.write_text("".join(json.dumps(r) + "\n" for r in records))
    yield server, urls
    server.stop()


def _argv(urls, out):
    return ["fetch-images", "--urls_file", str(urls), "--output_dir", str(out), "--num_workers", "1",
            "--max_retries", "0", "--max_failure_rate", "0.5"]


@pytest.mark.parametrize("point", ["mid_download", "image_not_renamed", "manifest_not_renamed"])
def test_fetch_images_killed_then_rerun(pmc, tmp_path, point):
    server, urls = pmc
    whole, out = tmp_path / "whole", tmp_path / "out"
    assert fetch_main(_argv(urls, whole)[1:]) == 0
    if point == "mid_download":  # PMC2 sends half its bytes and stalls; the kill lands once `.part` holds 64 KB
        route = server.routes[f"{PREFIX}/PMC2.tar.gz"]
        server.routes[f"{PREFIX}/PMC2.tar.gz"] = ("stall", route[1], 600)
        kill_when(_argv(urls, out), file_size_at_least(out / "tarballs" / "PMC2.tar.gz.part", 1 << 16))
        server.routes[f"{PREFIX}/PMC2.tar.gz"] = route
    else:
        match = {"image_not_renamed": "2_F1.jpg.tmp", "manifest_not_renamed": "failures.jsonl.tmp"}[point]
        kill_at(_argv(urls, out), fault("os:replace", tmp_path, match=match))
    assert not (out / "failures.jsonl").exists()  # (a) the manifest is written last and marks a finished run
    for image in (out / "images").glob("*.jpg"):  # (a) every image under its final name is whole
        assert image.read_bytes() == (whole / "images" / image.name).read_bytes()
    complete = {t for t in range(4) if all((out / "images" / f"{t}_F{k}.jpg").exists() for k in range(2))}
    before = server.requests.copy()  # a Counter: 0 for a tarball not asked for yet

    assert fetch_main(_argv(urls, out)[1:]) == 0
    assert tree_bytes(out) == tree_bytes(whole)  # (b) the same images and manifest
    fetched = {t for t in range(4) if server.requests[f"{PREFIX}/PMC{t}.tar.gz"] > before[f"{PREFIX}/PMC{t}.tar.gz"]}
    # (b) no tarball downloaded again for images already there (one cut off mid-extraction is reused, not fetched);
    # the last one is fetched exactly when its images were not all in place
    assert fetched <= set(range(4)) - complete and (3 in fetched) == (3 not in complete)
    assert_no_temporaries(out)  # (c)
