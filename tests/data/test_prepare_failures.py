"""`prepare` on hostile and broken input, and after `kill -9` (issue 16 items 3, 4, 6, 8): image paths stay inside
--image_root, a non-UTF-8 file is named with the offset and line, too many skips exit 1, and a killed run's
temporaries are removed by the rerun, whose result equals an uninterrupted run's."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from hf_medvlm.commands.prepare import main
from hf_medvlm.testing.kill import glob_matches, run_and_kill
from tests.data.conftest import write_jpeg

CAPTION = [{"from": "human", "value": "<image>\nDescribe the figure."}, {"from": "gpt", "value": "A chest CT."}]


def _alignment_raw(tmp_path, names, n_images=None):
    images = tmp_path / "images"
    for i in range(len(names) if n_images is None else n_images):
        write_jpeg(images / f"{i}.jpg", seed=i)
    records = [{"id": f"r{i}", "image": name, "conversations": CAPTION} for i, name in enumerate(names)]
    raw = tmp_path / "alignment.json"
    raw.write_text(json.dumps(records))
    return raw, images


def _prepare(raw, images, out, *extra):
    return main(["llava_med_alignment", "--input_path", str(raw), "--image_root", str(images), "--output_dir",
                 str(out), *extra])


def test_image_paths_that_leave_the_image_root_are_refused(tmp_path, capsys):
    secret = tmp_path / "secret.jpg"
    write_jpeg(secret, seed=9)  # a real image outside --image_root: it must not end up in the dataset
    raw, images = _alignment_raw(tmp_path, ["0.jpg", "1.jpg", "../secret.jpg", str(secret), "sub/../1.jpg"],
                                 n_images=2)
    with pytest.raises(ValueError, match=r"entry 2: record 'r2': image path '../secret.jpg' leaves .* through '\.\.'"):
        _prepare(raw, images, tmp_path / "out")
    assert _prepare(raw, images, tmp_path / "out", "--on_error", "skip", "--max_failure_rate", "0.5") == 0
    report = json.loads((tmp_path / "out" / "build_report.json").read_text())
    assert report["500k/train"] == {"unsafe_image_path": 2}
    assert pq.read_table(tmp_path / "out" / "500k").column("id").to_pylist() == ["r0", "r1", "r4"]
    assert "is an absolute path" in capsys.readouterr().err


def test_too_many_skipped_records_exit_1_and_push_nothing(tmp_path, capsys):
    raw, images = _alignment_raw(tmp_path, ["0.jpg", "1.jpg", "2.jpg", "gone.jpg"], n_images=3)
    argv = ["--on_error", "skip", "--push_to_hub", "--hub_repo_id", "me/never-pushed"]
    assert _prepare(raw, images, tmp_path / "out", *argv) == 1  # 1 of 4 skipped; no Hub is up to push to
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "hf-medvlm prepare: failed: 1 of 4 records failed (25%), more than --max_failure_rate 0.1; skips by reason "
        f"in {tmp_path / 'out'}/build_report.json; not pushed")
    assert pq.read_table(tmp_path / "out" / "500k").num_rows == 3  # written, with the skip in the card
    assert _prepare(raw, images, tmp_path / "out2", "--on_error", "skip", "--max_failure_rate", "0.25") == 0


def test_a_latin1_file_is_named_with_offset_and_line(tmp_path, capsys):
    raw, images = _alignment_raw(tmp_path, ["0.jpg"])
    records = [{"id": "r0", "image": "0.jpg", "conversations": CAPTION},
               {"id": "r1", "image": "0.jpg", "conversations": [CAPTION[0], {"from": "gpt", "value": "Sjögren."}]}]
    text = json.dumps(records, ensure_ascii=False, indent=1)
    raw.write_bytes(text.encode("latin-1"))
    offset = text.encode("latin-1").index(b"\xf6")
    line = text[: text.index("ö")].count("\n") + 1
    from hf_medvlm.cli import main as cli_main

    argv = ["prepare", "llava_med_alignment", "--input_path", str(raw), "--image_root", str(images), "--output_dir",
            str(tmp_path / "out")]
    assert cli_main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"hf-medvlm prepare: error: {raw}: not UTF-8 text: byte 0xf6 at byte offset {offset} (line {line}): invalid "
        "start byte; release files are UTF-8, so convert this one first (e.g. `iconv -f latin1 -t utf-8`); "
        "skipped 0 records")
    assert not (tmp_path / "out").exists()


def test_a_failed_prepare_leaves_no_empty_folders(tmp_path):
    raw, images = _alignment_raw(tmp_path, ["gone.jpg"], n_images=0)
    with pytest.raises(ValueError, match="no rows to write"):
        _prepare(raw, images, tmp_path / "out", "--on_error", "skip")
    assert not (tmp_path / "out").exists()
    (tmp_path / "kept").mkdir()  # a folder the user made is left, empty or not; the config folder is not
    with pytest.raises(ValueError, match="no rows to write"):
        _prepare(raw, images, tmp_path / "kept", "--on_error", "skip")
    assert list((tmp_path / "kept").iterdir()) == []


@pytest.mark.integration
def test_prepare_killed_mid_write_reruns_to_the_same_shards_and_no_temporaries(tmp_path):
    raw, images = _alignment_raw(tmp_path, [f"{i}.jpg" for i in range(300)])
    argv = ["prepare", "llava_med_alignment", "--input_path", str(raw), "--image_root", str(images),
            "--rows_per_shard", "10"]
    killed = tmp_path / "killed"
    run = run_and_kill([*argv, "--output_dir", str(killed)], glob_matches(killed / "500k", ".*tmp*/shard-00003*"))
    assert run.killed, run.output
    leftovers = list((killed / "500k").glob(".*"))
    assert len(leftovers) == 1 and not list((killed / "500k").glob("train-*"))  # nothing that looks complete

    assert main(argv[1:] + ["--output_dir", str(killed)]) == 0
    assert main(argv[1:] + ["--output_dir", str(tmp_path / "whole")]) == 0
    assert not list((killed / "500k").glob(".*"))
    shards = sorted(p.name for p in (killed / "500k").iterdir())
    assert shards == sorted(p.name for p in (tmp_path / "whole" / "500k").iterdir()) and len(shards) == 30
    for name in shards:
        assert pq.read_table(killed / "500k" / name).equals(pq.read_table(tmp_path / "whole" / "500k" / name))
