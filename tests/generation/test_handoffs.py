"""issue 17: `filter` -> `generate` -> `rate` hand-offs; every JSONL names its images relative to its own folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hf_medvlm.cli import main as cli_main
from hf_medvlm.data.loading import read_jsonl_rows
from hf_medvlm.generation.records import write_jsonl


def test_write_jsonl_rewrites_image_paths_relative_to_the_output_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = [{"id": "a", "images": ["in/figs/a.jpg", "/abs/b.jpg"]}, {"id": "b", "images": None}, {"id": "c"}]
    write_jsonl("out/deep/rows.jsonl", rows)
    written = [json.loads(line) for line in (tmp_path / "out/deep/rows.jsonl").read_text().splitlines()]
    assert written[0]["images"] == ["../../in/figs/a.jpg", "/abs/b.jpg"] and written[1:] == rows[1:]
    (tmp_path / "in/figs").mkdir(parents=True)
    (tmp_path / "in/figs/a.jpg").write_bytes(b"")
    write_jsonl("out/deep/one.jsonl", [{"id": "a", "images": ["in/figs/a.jpg"]}])
    assert read_jsonl_rows("out/deep/one.jsonl")[0]["images"] == ["out/deep/../../in/figs/a.jpg"]


@pytest.mark.integration
def test_filter_generate_rate_chain_from_any_folder(figure_records, tmp_path, monkeypatch):
    """The known break: kept.jsonl kept paths relative to the original input, generate read them against its own
    folder (`image file out/filtered/images/f0.jpg does not exist`)."""
    from hf_medvlm.testing.openai_server import CannedResponder, start_openai_server

    monkeypatch.chdir(tmp_path)
    kept = tmp_path / "out" / "filtered" / "kept.jsonl"
    assert cli_main(["filter", "pubmedvision", "--input", str(figure_records.relative_to(tmp_path)),
                     "--output_dir", "out/filtered", "--min_terms", "1", "--min_width", "8", "--min_height", "8",
                     "--dedup_model", "none"]) == 0
    assert all((kept.parent / p).is_file() for line in kept.read_text().splitlines()
               for p in json.loads(line)["images"])
    with start_openai_server(CannedResponder()) as llm:
        common = ["--llm_base_url", llm.url, "--llm_model", "loopback"]
        monkeypatch.chdir(tmp_path / "out")  # another working folder: paths still resolve
        assert cli_main(["generate", "pubmedvision", "--input", "filtered/kept.jsonl", "--output_dir", "pmv",
                         *common]) == 0
        assert cli_main(["generate", "biomed-vital", "--input", "filtered/kept.jsonl", "--output_dir", "vital",
                         "--demonstrations", str(_demos(tmp_path)), *common]) == 0
        monkeypatch.chdir(tmp_path)
        assert cli_main(["generate", "rate", "--input", "out/vital/data/conversations.jsonl", "--output_dir",
                         "out/ratings", *common]) == 0
    report = json.loads((tmp_path / "out" / "pmv" / "report.json").read_text())
    assert report["written"]["instruct"] == 5
    ratings = read_jsonl_rows(tmp_path / "out" / "ratings" / "data" / "ratings.jsonl")
    assert len(ratings) == 10 and all(isinstance(r["rating"], int) for r in ratings)
    assert all(Path(p).is_file() for r in ratings for p in r["images"])


def _demos(tmp_path):
    path = tmp_path / "demos.jsonl"
    path.write_text(json.dumps({"context": "Figure Caption:\nA CT.", "response": "User: What?\nAssistant: A CT.",
                                "modality": "ct_scan"}) + "\n")
    return path


def test_offline_the_llm_client_never_retries_a_refusal_in_a_command(figure_records, tmp_path, capsys,
                                                                       monkeypatch):
    """`generate` with HF_HUB_OFFLINE=1 against a loopback endpoint that answers 401: one request, exit 1."""
    from huggingface_hub import constants

    from hf_medvlm.testing.openai_server import Reply, start_openai_server

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # the LLM client is not the Hub: offline changes nothing
    with start_openai_server() as llm:
        llm.enqueue(*[Reply.error(401, "Incorrect API key provided")] * 5)
        code = cli_main(["generate", "llava-med", "--input", str(figure_records), "--output_dir", str(tmp_path / "o"),
                         "--llm_base_url", llm.url, "--llm_model", "m", "--llm_concurrency", "1", "--limit", "1"])
        assert code == 1 and len(llm.chat_requests()) == 1
    assert "HTTP 401" in capsys.readouterr().err


def test_generate_takes_the_endpoint_from_openai_base_url_as_its_help_says(figure_records, tmp_path, capsys,
                                                                         monkeypatch):
    from hf_medvlm.testing.openai_server import CannedResponder, start_openai_server

    argv = ["generate", "llava-med", "--input", str(figure_records), "--llm_model", "m", "--limit", "1"]
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert cli_main([*argv, "--output_dir", str(tmp_path / "none")]) == 2
    assert "give --llm_base_url (an OpenAI-compatible endpoint; default $OPENAI_BASE_URL)" in capsys.readouterr().err
    with start_openai_server(CannedResponder()) as llm:
        monkeypatch.setenv("OPENAI_BASE_URL", llm.url)
        assert cli_main([*argv, "--output_dir", str(tmp_path / "env")]) == 0
        assert len(llm.chat_requests()) == 1
