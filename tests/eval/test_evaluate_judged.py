"""`hf-medvlm eval` for the judged tasks (qa50 chat, win rate) against the loopback OpenAI-compatible server."""

import json

import pytest

from hf_medvlm.cli import main as cli_main
from hf_medvlm.testing.openai_server import Reply, start_openai_server
from tests.conftest import make_rgb_image

pytestmark = pytest.mark.integration


QA50_KINDS = [("conversation", "chest_xray"), ("detailed_description", "ct_scan"), ("conversation", "mri"),
              ("detailed_description", "histology")]


def _qa50_parquet(path, n=2):
    import datasets

    rows = [dict(question_id=f"c{i}", image=make_rgb_image(seed=i), text="What is shown?\n<image>",
                 gpt4_answer="A chest X-ray with an effusion.", fig_caption="Chest X-ray.", fig_label="Figure 1",
                 in_text_mention="An effusion is seen.", type=t, domain=d)
            for i, (t, d) in enumerate(QA50_KINDS[:n])]
    datasets.Dataset.from_list(rows).to_parquet(str(path))
    return path


def test_chat_task_scores_with_judge_and_resumes(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    data = _qa50_parquet(tmp_path / "qa50.parquet")
    with start_openai_server() as server:
        server.enqueue("8 4\nok", "no scores here")
        argv = ["eval", "--task", "chat", "--model_name_or_path", str(tiny_model_dir), "--dataset_name", str(data),
                "--output_dir", str(tmp_path / "out"), "--max_new_tokens", "4", "--llm_base_url", server.url,
                "--llm_model", "judge", "--llm_concurrency", "1", "--benchmark_name", "qa50",
                "--max_failure_rate", "0.5"]  # one of the two verdicts does not parse, on purpose
        assert cli_main(argv) == 0
        assert len(server.chat_requests()) == 2
        # the judge saw the question without the <image> marker... and the model's own answer
        assert "[Question]\nWhat is shown?" in server.chat_requests()[0].body["messages"][1]["content"]
        results = json.loads((tmp_path / "out" / "results.json").read_text())
        qa50 = results["scores"]["llava_med_qa50"]
        assert qa50["overall"]["relative_score"] == pytest.approx(50.0)
        assert qa50["unparseable"]["count"] == 1  # the reply without scores is counted, not dropped
        entries = json.loads((tmp_path / "out" / "model_index.json").read_text())
        assert entries[0]["metric_name"].startswith("relative score (%, llava_med qa50")
        assert cli_main(argv) == 0  # rerun: answers and judge replies are reused
        assert len(server.chat_requests()) == 2


def _effusion_judge(body):
    """A scripted judge: prefers the one answer that mentions the effusion, ties when both do, and says "[[A]]"
    (position bias) when neither does."""
    shown = body["messages"][-1]["content"]
    first, second = (shown.split(f"[The Start of Assistant {x}'s Answer]\n")[1].split("\n")[0] for x in "AB")
    mentions = ("effusion" in first.lower(), "effusion" in second.lower())
    return {(True, False): "[[A]]", (False, True): "[[B]]", (True, True): "[[C]]", (False, False): "[[A]]"}[mentions]


def test_win_rate_task(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    data = _qa50_parquet(tmp_path / "qa50.parquet", n=4)
    # c0: A wins in both orders; c1: B does; c2: a tie in both orders; c3: the judge picks whichever comes first
    answers = {"a": ["An effusion.", "Nothing.", "An effusion.", "Unclear."],
               "b": ["Nothing.", "A small effusion.", "Effusion.", "Normal."]}
    for name, texts in answers.items():
        (tmp_path / f"{name}.jsonl").write_text(
            "".join(json.dumps({"question_id": f"c{i}", "text": text}) + "\n" for i, text in enumerate(texts)))
    with start_openai_server(_effusion_judge) as server:
        argv = ["eval", "--task", "win_rate", "--dataset_name", str(data), "--output_dir", str(tmp_path / "out"),
                "--answers_file", str(tmp_path / "a.jsonl"), "--answers_file_b", str(tmp_path / "b.jsonl"),
                "--llm_base_url", server.url, "--llm_model", "judge", "--llm_concurrency", "1"]
        assert cli_main(argv) == 0
        assert len(server.chat_requests()) == 8
    judgements = [json.loads(line) for line in (tmp_path / "out" / "win_rate_judgements.jsonl").open()]
    assert [(j["question_id"], j["verdict_a_first"], j["verdict_b_first"], j["outcome"]) for j in judgements] == [
        ("c0", "A", "B", "win"), ("c1", "B", "A", "loss"), ("c2", "C", "C", "tie"), ("c3", "A", "A", "inconsistent")]
    result = json.loads((tmp_path / "out" / "results.json").read_text())["scores"]["biomed_vital_win_rate"]
    assert (result["wins"], result["losses"], result["ties"], result["inconsistent"]) == (1, 1, 2, 1)
    assert result["win_rate"] == 0.25 and result["win_rate_ties_half"] == 0.5
    assert result["unparseable"]["count"] == 0


def test_a_rejected_judge_key_ends_the_run_at_once_in_one_sentence(tmp_path, capsys):
    data = _qa50_parquet(tmp_path / "qa50.parquet")
    for name in ("a", "b"):
        (tmp_path / f"{name}.jsonl").write_text(
            "".join(json.dumps({"question_id": f"c{i}", "text": "x"}) + "\n" for i in range(2)))
    with start_openai_server(lambda body: Reply.error(401, "Incorrect API key provided")) as server:
        argv = ["eval", "--task", "win_rate", "--dataset_name", str(data), "--output_dir", str(tmp_path / "out"),
                "--answers_file", str(tmp_path / "a.jsonl"), "--answers_file_b", str(tmp_path / "b.jsonl"),
                "--llm_base_url", server.url, "--llm_model", "judge", "--llm_concurrency", "1"]
        assert cli_main(argv) == 1
        sent = len(server.chat_requests())
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # above it: progress bars
    assert last.startswith("hf-medvlm eval: failed: ChatBackendError: ")
    assert f"{server.url}/chat/completions answered HTTP 401 (Incorrect API key provided)" in last
    assert "Traceback" not in err
    assert sent <= 2  # 4 judge requests were due; only those queued with the first (2 x concurrency) went out


def test_win_rate_needs_second_answers_file(tmp_path, capsys):
    argv = ["eval", "--task", "win_rate", "--dataset_name", "x", "--output_dir", str(tmp_path), "--answers_file", "a"]
    assert cli_main(argv) == 2
    assert "answers_file_b" in capsys.readouterr().err
