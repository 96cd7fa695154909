"""`hf-medvlm eval --endpoint_base_url`: answers from an OpenAI-compatible server running the same tiny model equal the
local greedy answers; images travel as lossless data URLs; the run is concurrent, resumable and cached."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import torch

from hf_medvlm.cli import main as cli_main
from hf_medvlm.llm.local import decode_data_url
from hf_medvlm.testing.openai_server import Reply, TransformersResponder, start_openai_server
from tests.eval.conftest import EVAL_ROWS

pytestmark = pytest.mark.integration

FILES = ("answers.jsonl", "results.json", "model_index.json")


def _eval(out, data, model, *extra):
    argv = ["eval", "--model_name_or_path", str(model), "--dataset_name", str(data), "--output_dir", str(out),
            "--max_new_tokens", "6", "--batch_size", "4", "--benchmark_name", "tiny-vqa", *extra]
    return cli_main(argv)


@pytest.fixture(scope="module")
def served_tiny_model(tiny_model_dir):
    """The loopback OpenAI-compatible server generating with the very model saved in `tiny_model_dir`."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    with start_openai_server(TransformersResponder(model, processor), model_name="tiny-llava") as server:
        yield server


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_endpoint_answers_equal_local_greedy_answers_and_files_match(tmp_path, tiny_model_dir, vqa_parquet,
                                                                     served_tiny_model):
    server = served_tiny_model
    server.clear()
    assert _eval(tmp_path / "local", vqa_parquet, tiny_model_dir) == 0
    assert _eval(tmp_path / "served", vqa_parquet, "tiny-llava", "--endpoint_base_url", server.url) == 0
    local, served = _lines(tmp_path / "local" / "answers.jsonl"), _lines(tmp_path / "served" / "answers.jsonl")
    assert [a["question_id"] for a in served] == [r["id"] for r in EVAL_ROWS]
    assert [a["text"] for a in served] == [a["text"] for a in local]
    assert any(a["text"] for a in served)  # the tiny random model does say something
    results = {name: json.loads((tmp_path / name / "results.json").read_text()) for name in ("local", "served")}
    assert results["served"]["scores"] == results["local"]["scores"]
    for name in FILES:
        assert (tmp_path / "served" / name).is_file()
    assert (json.loads((tmp_path / "served" / "model_index.json").read_text())
            == json.loads((tmp_path / "local" / "model_index.json").read_text()))
    # One request per question: greedy, bounded, the image first as a PNG data URL holding the dataset's pixels.
    requests = server.chat_requests()
    assert len(requests) == len(EVAL_ROWS)
    by_question = {r.body["messages"][0]["content"][-1]["text"]: r.body for r in requests}  # sent concurrently
    assert set(by_question) == {r["question"] for r in EVAL_ROWS}
    body = by_question[EVAL_ROWS[0]["question"]]
    assert body["model"] == "tiny-llava" and body["temperature"] == 0.0 and body["max_tokens"] == 6
    image_part, text_part = body["messages"][0]["content"]
    assert image_part["image_url"]["url"].startswith("data:image/png;base64,") and text_part["type"] == "text"
    from datasets import load_dataset

    original = load_dataset("parquet", data_files=str(vqa_parquet), split="train")[0]["image"].convert("RGB")
    assert np.array_equal(np.asarray(decode_data_url(image_part["image_url"]["url"])), np.asarray(original))


def test_endpoint_run_resumes_from_its_replies_and_uses_the_cache(tmp_path, vqa_parquet, served_tiny_model):
    server = served_tiny_model
    out, cache = tmp_path / "served", tmp_path / "cache"
    args = ("--endpoint_base_url", server.url, "--endpoint_cache_dir", str(cache))
    server.clear()
    assert _eval(out, vqa_parquet, "tiny-llava", *args) == 0
    first = _lines(out / "answers.jsonl")
    assert len(server.chat_requests()) == 5
    # A kill after the replies arrived but before answers.jsonl was written: nothing is sent again.
    (out / "answers.jsonl").write_text(json.dumps(first[0]) + "\n")
    server.clear()
    assert _eval(out, vqa_parquet, "tiny-llava", *args) == 0
    assert server.chat_requests() == [] and _lines(out / "answers.jsonl") == first
    # Another output folder with the same cache: answered from the cache, no request either.
    assert _eval(tmp_path / "again", vqa_parquet, "tiny-llava", *args) == 0
    assert server.chat_requests() == [] and _lines(tmp_path / "again" / "answers.jsonl") == first
    report = json.loads((tmp_path / "again" / "answers.endpoint.report.json").read_text())
    assert report["cached"] == 5


def test_endpoint_requests_run_concurrently(tmp_path, vqa_parquet):
    active, peak, lock = [0], [0], threading.Lock()

    def responder(body):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.2)
        with lock:
            active[0] -= 1
        return "Yes."

    with start_openai_server(responder) as server:
        code = _eval(tmp_path / "o", vqa_parquet, "m", "--endpoint_base_url", server.url,
                     "--endpoint_concurrency", "5")
    assert code == 0 and peak[0] >= 3
    assert {a["text"] for a in _lines(tmp_path / "o" / "answers.jsonl")} == {"Yes."}


def test_a_wrong_model_name_stops_with_a_clear_error_and_no_results(tmp_path, vqa_parquet, capsys):
    with start_openai_server() as server:
        server.enqueue(Reply.error(404, "The model `nope` does not exist.", "not_found_error"))
        code = _eval(tmp_path / "o", vqa_parquet, "nope", "--endpoint_base_url", server.url)
    assert code == 1
    err = capsys.readouterr().err
    assert "404" in err and "model name" in err
    assert not (tmp_path / "o" / "results.json").exists()


def test_endpoint_needs_the_served_model_name(tmp_path, vqa_parquet, capsys):
    argv = ["eval", "--dataset_name", str(vqa_parquet), "--output_dir", str(tmp_path / "o"), "--endpoint_base_url",
            "http://127.0.0.1:9/v1"]
    assert cli_main(argv) == 2
    assert "model_name_or_path" in capsys.readouterr().err
