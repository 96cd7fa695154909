"""`generate` killed with a request in flight and between its data file and report (over an earlier run); `filter`
killed between its output files (over an earlier run). Each rerun ends as an uninterrupted run does."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from hf_medvlm.cli import main as cli_main
from hf_medvlm.testing.openai_server import message_texts, start_openai_server
from tests.faults.helpers import (
    HoldingResponder, assert_no_temporaries, fault, jsonl, kill_at, kill_when, tree_bytes,
)

pytestmark = [pytest.mark.faults, pytest.mark.integration]

CAPTIONS = ["Axial CT of the abdomen showing a hypodense hepatic lesion in the liver with ascites.",
            "Chest radiograph with cardiomegaly, a pleural effusion and a lung nodule.",
            "A photo of the laboratory team."]


def _figures(folder, n: int, name: str):
    """`n` figure records (JSONL) with PNG images beside them."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        pixels = np.random.default_rng(i).integers(0, 255, (24, 24, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "images" / f"fig{i}.png")
        lines.append({"id": f"fig{i}", "images": [f"images/fig{i}.png"], "caption": CAPTIONS[i % 3],
                      "mentions": [f"As seen in figure {i}."], "domain": "ct_scan"})
    path = folder / name
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _transcript(body: dict) -> str:
    """A self-instruct conversation that depends only on the request, so every run gets the same one."""
    tag = hashlib.sha256("\n".join(message_texts(body["messages"])).encode()).hexdigest()[:8]
    return ("User: What imaging modality is shown?\nAssistant: An axial CT image.\n"
            f"User: What does the caption describe?\nAssistant: A finding labelled {tag}.\n")


@pytest.fixture(scope="module")
def figures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("generate_faults")
    return _figures(folder, 8, "figures.jsonl"), _figures(folder, 3, "earlier.jsonl")


def _argv(figures_file, out, url):
    return ["generate", "llava-med", "--input", str(figures_file), "--output_dir", str(out), "--llm_base_url", url,
            "--llm_model", "m", "--llm_concurrency", "1"]


def _assert_same_rows(out, whole):
    assert (out / "data" / "conversations.jsonl").read_bytes() == (whole / "data" / "conversations.jsonl").read_bytes()
    ids = [row["id"] for row in jsonl(out / "responses.jsonl")]
    assert len(ids) == len(set(ids)) == 8  # no request answered twice


@pytest.mark.parametrize("point", ["request_in_flight", "before_report_over_an_earlier_run"])
def test_generate_killed_then_rerun(figures, tmp_path, monkeypatch, point):
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    figures_file, earlier = figures
    whole, out = tmp_path / "whole", tmp_path / "out"
    with start_openai_server(_transcript) as server:
        assert cli_main(_argv(figures_file, whole, server.url)) == 0
        assert len(server.chat_requests()) == 8
        if point == "request_in_flight":
            holding = HoldingResponder(_transcript, hold_at=4)
            server.responder = holding
            try:
                kill_when(_argv(figures_file, out, server.url), holding.held.is_set)
            finally:
                holding.release.set()
            assert not (out / "data").exists() and not (out / "report.json").exists()  # (a)
            assert len(jsonl(out / "responses.jsonl")) == 3
        else:
            assert cli_main(_argv(earlier, out, server.url)) == 0
            kill_at(_argv(figures_file, out, server.url), fault("os:replace", tmp_path, match="/.report.json.tmp-"))
            if (out / "report.json").exists():  # (a) a report names the data beside it, not an earlier run's
                report = json.loads((out / "report.json").read_text())
                assert report["written"]["conversations"] == len(jsonl(out / "data" / "conversations.jsonl"))
        sent, answered = len(server.chat_requests()), len(jsonl(out / "responses.jsonl"))
        assert cli_main(_argv(figures_file, out, server.url)) == 0
        assert len(server.chat_requests()) - sent == 8 - answered  # (b) only the requests without a reply
    _assert_same_rows(out, whole)
    assert_no_temporaries(out)  # (c)


def _filter_argv(figures_file, out):
    return ["filter", "pubmedvision", "--input", str(figures_file), "--output_dir", str(out), "--min_terms", "3",
            "--min_width", "1", "--min_height", "1", "--dedup_model", "none"]


@pytest.mark.parametrize("point", ["kept.jsonl", "dropped.jsonl", "report.json"])
def test_filter_over_an_earlier_run_killed_between_files(figures, tmp_path, point):
    figures_file, earlier = figures
    whole, out = tmp_path / "whole", tmp_path / "out"
    assert cli_main(_filter_argv(figures_file, whole)) == 0
    assert cli_main(_filter_argv(earlier, out)) == 0
    kill_at(_filter_argv(figures_file, out), fault("os:replace", tmp_path, match=point))
    if (out / "report.json").exists():  # (a) the report describes the kept/dropped files beside it
        report = json.loads((out / "report.json").read_text())
        assert report["kept"] == len(jsonl(out / "kept.jsonl"))
        assert report["input"] == len(jsonl(out / "kept.jsonl")) + len(jsonl(out / "dropped.jsonl"))
    assert cli_main(_filter_argv(figures_file, out)) == 0
    assert tree_bytes(out) == tree_bytes(whole)  # (b)
    assert_no_temporaries(out)  # (c)
