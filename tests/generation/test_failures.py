"""`hf-medvlm generate` exit status when its work failed (issue 16 item 4) and record ids that would name files
outside the image root (item 3)."""

import json

import pytest

from hf_medvlm.cli import main as cli_main
from hf_medvlm.generation.records import read_figure_records
from hf_medvlm.testing.openai_server import Reply, start_openai_server

from .test_pipelines import TRANSCRIPT


def _generate(figure_records, out, url, *extra):
    return cli_main(["generate", "llava-med", "--input", str(figure_records), "--output_dir", str(out),
                     "--llm_base_url", url, "--llm_model", "m", "--llm_concurrency", "1", "--llm_max_retries", "0",
                     *extra])


@pytest.mark.integration
def test_every_reply_unparseable_exits_1_with_the_rows_it_could_write(figure_records, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    out = tmp_path / "out"
    with start_openai_server(lambda body: "I cannot help with that.") as server:
        assert _generate(figure_records, out, server.url) == 1  # was: exit 0 with 0 rows
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"hf-medvlm generate: failed: 5 of 5 records failed (100%), more than --max_failure_rate 0.2; "
        f"counts in {out}/report.json")
    report = json.loads((out / "report.json").read_text())
    assert report["failed"] == {"count": 5, "of": 5} and report["written"] == {"conversations": 0}
    assert (out / "data" / "conversations.jsonl").read_text() == ""


@pytest.mark.integration
def test_failures_within_the_limit_exit_0_and_a_failed_request_exits_1(figure_records, tmp_path, monkeypatch,
                                                                       capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    out = tmp_path / "out"
    with start_openai_server(lambda body: TRANSCRIPT) as server:
        server.enqueue("No conversation here.")  # one record of five yields nothing: 20%, not above the limit
        assert _generate(figure_records, out, server.url) == 0
        assert _generate(figure_records, out, server.url, "--max_failure_rate", "0") == 1  # same replies, reused
        assert len(server.chat_requests()) == 5
    assert json.loads((out / "report.json").read_text())["failed"] == {"count": 1, "of": 5}
    with start_openai_server(lambda body: TRANSCRIPT) as server:
        server.enqueue(Reply.server_error(500))  # failed for good (no retries): the output lacks that record
        assert _generate(figure_records, tmp_path / "again", server.url) == 1
        assert "1 request(s) failed after their retries; rerun" in capsys.readouterr().err
        assert _generate(figure_records, tmp_path / "again", server.url) == 0  # the rerun sends only that one
        assert len(server.chat_requests()) == 6


def test_pair_id_that_is_not_a_file_name_is_refused(tmp_path):
    path = tmp_path / "figures.jsonl"
    path.write_text(json.dumps({"pair_id": "ok_1", "fig_caption": "A CT."}) + "\n"
                    + json.dumps({"pair_id": "../../escaped", "fig_caption": "A CT."}) + "\n")
    with pytest.raises(ValueError, match=r"figures.jsonl:2: pair_id '../../escaped' is not a plain file name"):
        read_figure_records(path)
    path.write_text(json.dumps({"pair_id": "ok_1", "fig_caption": "A CT."}) + "\n")
    assert read_figure_records(path, image_root=tmp_path / "img")[0].images == [str(tmp_path / "img" / "ok_1.jpg")]


def test_filter_exits_1_when_images_are_lost_not_filtered(tmp_path, capsys):
    from hf_medvlm.commands.filter import main as filter_main

    from .test_cli import TERMS
    from .test_filtering import _scan

    (tmp_path / "img").mkdir()
    lines = []
    for i in range(4):
        if i < 3:
            _scan(i).resize((400, 400)).save(tmp_path / "img" / f"r{i}.png")
        lines.append(json.dumps({"id": f"r{i}", "images": [f"img/r{i}.png"], "caption": f"{TERMS} {i}"}))
    (tmp_path / "img" / "r2.png").write_bytes(b"not an image")  # unreadable: counted, not a crash
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    argv = ["pubmedvision", "--input", str(tmp_path / "in.jsonl"), "--output_dir", str(tmp_path / "out"),
            "--dedup_model", "none"]
    assert filter_main(argv) == 1  # r2 unreadable, r3 missing: 2 of 4 lost
    assert capsys.readouterr().err.strip() == (
        "hf-medvlm filter: failed: 2 of 4 records failed (50%), more than --max_failure_rate 0.1; "
        f"reasons in {tmp_path / 'out'}/dropped.jsonl")
    dropped = [json.loads(line) for line in (tmp_path / "out" / "dropped.jsonl").read_text().splitlines()]
    assert [(d["id"], d["failed"], d["reason"].split(" ")[0]) for d in dropped] == [
        ("r2", True, "unreadable"), ("r3", True, "missing")]
    assert filter_main([*argv, "--max_failure_rate", "0.5"]) == 0
    assert [json.loads(line)["id"] for line in (tmp_path / "out" / "kept.jsonl").read_text().splitlines()] == [
        "r0", "r1"]
