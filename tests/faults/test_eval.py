"""`eval` killed while it answers, while it merges, while it writes its results, and mid-judge; then rerun."""

from __future__ import annotations

import hashlib
import json

import pytest

from hf_medvlm.cli import main as cli_main
from hf_medvlm.testing.openai_server import message_texts, start_openai_server
from tests.conftest import make_rgb_image
from tests.eval.conftest import write_eval_parquet
from tests.faults.helpers import (
    HoldingResponder, assert_no_temporaries, assert_no_wrote_line, fault, jsonl, kill_at, kill_when,
)

pytestmark = [pytest.mark.faults, pytest.mark.integration]

ROWS = [dict(id=f"q{i}", question=f"Is finding {i} present?", answer="yes" if i % 2 else "no",
             answer_type="closed" if i % 3 else "open") for i in range(12)]


def _argv(model_dir, data, out):
    return ["eval", "--model_name_or_path", str(model_dir), "--dataset_name", str(data), "--output_dir", str(out),
            "--max_new_tokens", "4", "--batch_size", "1", "--save_every", "1", "--dtype", "float32"]


def _results(out):
    """results.json without what names the run's own folder or times it."""
    results = json.loads((out / "results.json").read_text())
    results["config"].pop("output_dir")
    for score in results["scores"].values():
        score.pop("run", None)
    return results


@pytest.fixture(scope="module")
def vqa(tmp_path_factory, tiny_model_dir):
    folder = tmp_path_factory.mktemp("eval_faults")
    data = write_eval_parquet(folder / "eval.parquet", ROWS)
    whole = folder / "whole"
    assert cli_main(_argv(tiny_model_dir, data, whole)) == 0
    return data, whole


@pytest.mark.parametrize("point", ["mid_answers", "after_merge", "between_results_files"])
def test_eval_killed_then_rerun(vqa, tiny_model_dir, tmp_path, point):
    data, whole = vqa
    out = tmp_path / "out"
    spec = {
        # two answers appended, the third being generated
        "mid_answers": fault("hf_medvlm.eval.benchmark:append_answers", tmp_path, call=3),
        # answers.jsonl merged, the per-process file not yet deleted
        "after_merge": fault("os:unlink", tmp_path, match="answers.rank0.jsonl"),
        # one of results.json / model_index.json in place, the other not yet
        "between_results_files": fault("os:replace", tmp_path, match=".json.tmp-", when="after"),
    }[point]
    run = kill_at(_argv(tiny_model_dir, data, out), spec)
    assert_no_wrote_line(run)
    if (out / "results.json").exists():  # (a) results.json marks a finished evaluation: nothing may be missing
        assert (out / "model_index.json").exists() and (out / "answers.jsonl").exists()

    assert cli_main(_argv(tiny_model_dir, data, out)) == 0
    assert (out / "answers.jsonl").read_bytes() == (whole / "answers.jsonl").read_bytes()  # (b) no answer twice
    assert _results(out) == _results(whole)
    assert (out / "model_index.json").read_bytes() == (whole / "model_index.json").read_bytes()
    assert not list(out.glob("answers.rank*.jsonl"))
    assert_no_temporaries(out)  # (c)


# ------------------------------------------------------------------------------------------------------ judge


def _qa50(path, n=6):
    import datasets

    rows = [dict(question_id=f"c{i}", image=make_rgb_image(seed=i), text=f"What is shown in figure {i}?",
                 gpt4_answer=f"Finding {i}.", fig_caption="Chest X-ray.", fig_label="Figure 1",
                 in_text_mention="An effusion is seen.", type="conversation", domain="chest_xray")
            for i in range(n)]
    datasets.Dataset.from_list(rows).to_parquet(str(path))
    return path


def _verdict(body: dict) -> str:
    """A reply that depends only on the request: the same request gets the same verdict in every run."""
    digest = hashlib.sha256("\n".join(message_texts(body["messages"])).encode()).digest()
    return f"{digest[0] % 9 + 1} {digest[1] % 9 + 1}\n[[{'ABC'[digest[2] % 3]}]]"


@pytest.fixture(scope="module")
def judged_inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("judge_faults")
    data = _qa50(folder / "qa50.parquet")
    for name in ("a", "b"):
        (folder / f"{name}.jsonl").write_text("".join(
            json.dumps({"question_id": f"c{i}", "text": f"model {name} answer {i}"}) + "\n" for i in range(6)))
    return folder, data


def _judge_argv(task, folder, data, out, url):
    argv = ["eval", "--task", task, "--dataset_name", str(data), "--output_dir", str(out), "--answers_file",
            str(folder / "a.jsonl"), "--llm_base_url", url, "--llm_model", "judge", "--llm_concurrency", "1"]
    return argv + (["--answers_file_b", str(folder / "b.jsonl")] if task == "win_rate" else [])


@pytest.mark.parametrize("task,raw,judgements", [("chat", "chat_judge.jsonl", "chat_judgements.jsonl"),
                                                 ("win_rate", "win_rate_judge.jsonl", "win_rate_judgements.jsonl")])
def test_judge_killed_mid_request_resends_only_the_unanswered(judged_inputs, tmp_path, monkeypatch, task, raw,
                                                              judgements):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    folder, data = judged_inputs
    with start_openai_server(_verdict) as server:
        assert cli_main(_judge_argv(task, folder, data, tmp_path / "whole", server.url)) == 0
        total = len(server.chat_requests())
    holding = HoldingResponder(_verdict, hold_at=4)  # three replies written, the fourth request in flight
    out = tmp_path / "out"
    with start_openai_server(holding) as server:
        try:
            run = kill_when(_judge_argv(task, folder, data, out, server.url), holding.held.is_set)
        finally:
            holding.release.set()
        assert_no_wrote_line(run)
        assert not (out / "results.json").exists() and not (out / judgements).exists()  # (a)
        kept = len(jsonl(out / raw))
        assert kept == 3
        assert cli_main(_judge_argv(task, folder, data, out, server.url)) == 0
        assert len(server.chat_requests()) == 4 + total - kept  # (b) the rerun sends only what has no reply
    assert sorted(row["id"] for row in jsonl(out / raw)) == sorted(row["id"] for row in jsonl(tmp_path / "whole" / raw))
    assert (out / judgements).read_bytes() == (tmp_path / "whole" / judgements).read_bytes()
    assert _results(out) == _results(tmp_path / "whole")
    assert_no_temporaries(out)  # (c)
