"""Exit status of `fetch-images` and `prepare` when part of the work failed (issue 16 item 4): 1 above the command's
--max_failure_rate, 0 within it, the outputs written either way."""

from __future__ import annotations

import json

from hf_medvlm.cli import main as cli_main
from tests.data.conftest import jpeg_bytes, make_tarball


def test_fetch_images_exit_1_when_more_than_max_failure_rate_of_the_images_are_lost(pmc_server, tmp_path, capsys):
    pmc_server.routes["/pub/pmc/oa_package/aa/bb/PMC1.tar.gz"] = ("ok", make_tarball({"PMC1/f1.jpg": jpeg_bytes(1)}))
    urls = tmp_path / "urls.jsonl"
    urls.write_text("".join(json.dumps({"pmc_tar_url": f"{pmc_server.url}/pub/pmc/oa_package/aa/bb/PMC{i}.tar.gz",
                                        "image_file_path": f"PMC{i}/f1.jpg", "pair_id": f"{i}_F1"}) + "\n"
                            for i in (1, 2, 3)))  # PMC2 and PMC3 answer 404
    argv = ["fetch-images", "--urls_file", str(urls), "--output_dir", str(tmp_path / "out"), "--max_retries", "0",
            "--backoff_seconds", "0.01"]
    assert cli_main(argv) == 1  # was 0: one image of three counted as success
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == (f"hf-medvlm fetch-images: failed: 2 of 3 images failed (67%), more than --max_failure_rate 0.1; "
                    f"reasons in {tmp_path / 'out' / 'failures.jsonl'}")
    assert (tmp_path / "out" / "images" / "1_F1.jpg").is_file()
    assert cli_main([*argv, "--max_failure_rate", "0.7"]) == 0  # 1 already present, the same 2 lost
