"""`hf-medvlm eval` after a kill, with malformed answers, and when the judge fails: resume to the same answers, refuse
bad input by file/line/id, exit 1 when the work failed, and name only files that exist (issue 16 items 1, 4, 7)."""

import json
import os

import pytest

from hf_medvlm.cli import main as cli_main
from hf_medvlm.eval.benchmark import append_answers, read_answers
from hf_medvlm.testing.kill import file_lines_at_least, run_and_kill
from hf_medvlm.testing.openai_server import Reply, start_openai_server
from tests.eval.conftest import EVAL_ROWS, write_eval_parquet

ROWS = [dict(id=f"q{i}", question=f"Question {i}?", answer="yes", answer_type="closed") for i in range(40)]


def _eval_argv(model_dir, data, out):
    return ["eval", "--model_name_or_path", str(model_dir), "--dataset_name", str(data), "--output_dir", str(out),
            "--max_new_tokens", "6", "--batch_size", "1", "--save_every", "1", "--dtype", "float32"]


def _answers(out):
    return [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]


def test_torn_answer_line_is_cut_off_and_the_rerun_appends_cleanly(tmp_path):
    path = tmp_path / "answers.rank0.jsonl"
    append_answers(path, [dict(question_id="q1", text="yes")])
    with path.open("a") as f:
        f.write('{"question_id": "q2", "te')  # the kill landed mid-line
    assert set(read_answers(path, repair=True)) == {"q1"}
    append_answers(path, [dict(question_id="q2", text="no")])
    assert [r["question_id"] for r in map(json.loads, path.read_text().splitlines())] == ["q1", "q2"]
    # A complete last line without its newline gets one, so the next answer does not glue onto it.
    path.write_text('{"question_id": "q1", "text": "yes"}')
    read_answers(path, repair=True)
    append_answers(path, [dict(question_id="q2", text="no")])
    assert set(read_answers(path)) == {"q1", "q2"}


@pytest.mark.integration
def test_eval_killed_mid_answers_resumes_to_the_uninterrupted_answers(tmp_path, tiny_model_dir):
    data = write_eval_parquet(tmp_path / "eval.parquet", ROWS)
    assert cli_main(_eval_argv(tiny_model_dir, data, tmp_path / "whole")) == 0
    out = tmp_path / "killed"
    part = out / "answers.rank0.jsonl"
    run = run_and_kill(_eval_argv(tiny_model_dir, data, out), file_lines_at_least(part, 2))
    assert run.killed, run.output
    assert not (out / "results.json").exists()
    with part.open("a") as f:
        f.write('{"question_id": "q39", "prompt": "Question 39?", "te')  # as if the kill had torn the next line

    assert cli_main(_eval_argv(tiny_model_dir, data, out)) == 0  # before the fix: exit 2, "line N is not valid JSON"
    assert _answers(out) == _answers(tmp_path / "whole")
    assert not list(out.glob("answers.rank*.jsonl")) and not list(out.glob(".*tmp*"))
    assert cli_main(_eval_argv(tiny_model_dir, data, out)) == 0  # and every later run too


@pytest.mark.integration
def test_answers_with_non_string_text_are_counted_and_refused(tmp_path, vqa_parquet, capsys):
    answers = tmp_path / "answers.jsonl"
    texts = ["yes", None, 3, {"answer": "liver"}, "ct"]
    answers.write_text("".join(json.dumps({"question_id": r["id"], "text": t}) + "\n"
                               for r, t in zip(EVAL_ROWS, texts)))
    argv = ["eval", "--dataset_name", str(vqa_parquet), "--output_dir", str(tmp_path / "o"), "--answers_file",
            str(answers)]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # above it: datasets' progress bars
    assert err == (f"hf-medvlm eval: error: {answers}: 3 answer(s) whose 'text' is not a string, e.g. "
                   "line 2 (question_id 'q2'): null; line 3 (question_id 'q3'): 3; "
                   "line 4 (question_id 'q4'): {\"answer\": \"liver\"}")
    assert not (tmp_path / "o" / "results.json").exists()


def _win_rate_inputs(tmp_path):
    from tests.eval.test_evaluate_judged import _qa50_parquet

    data = _qa50_parquet(tmp_path / "qa50.parquet")
    for name in ("a", "b"):
        (tmp_path / f"{name}.jsonl").write_text(
            "".join(json.dumps({"question_id": f"c{i}", "text": name}) + "\n" for i in range(2)))
    return data


@pytest.mark.integration
def test_win_rate_whose_judge_always_fails_exits_1_and_names_only_written_files(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    data = _win_rate_inputs(tmp_path)
    out = tmp_path / "out"
    with start_openai_server(lambda body: Reply.server_error(500)) as server:
        argv = ["eval", "--task", "win_rate", "--dataset_name", str(data), "--output_dir", str(out),
                "--answers_file", str(tmp_path / "a.jsonl"), "--answers_file_b", str(tmp_path / "b.jsonl"),
                "--llm_base_url", server.url, "--llm_model", "judge", "--llm_concurrency", "1",
                "--llm_max_retries", "0"]
        assert cli_main(argv) == 1
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines()[-1] == (
        "hf-medvlm eval: failed: 4 request(s) failed after their retries; rerun the same command to send only those; "
        f"counts in {out / 'results.json'}")
    result = json.loads((out / "results.json").read_text())["scores"]["biomed_vital_win_rate"]
    assert result["win_rate"] is None and result["unparseable"]["by_reason"] == {"request_failed": 2}
    wrote = next(line for line in captured.out.splitlines() if line.startswith("wrote "))
    named = wrote.removeprefix("wrote ").split(", ")
    assert str(out / "answers.jsonl") not in named and all(os.path.exists(path) for path in named)
    assert {os.path.basename(p) for p in named} == {"win_rate_judgements.jsonl", "win_rate.json", "results.json",
                                                   "model_index.json"}


@pytest.mark.integration
def test_judge_failures_within_max_failure_rate_exit_0(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    data = _win_rate_inputs(tmp_path)
    with start_openai_server() as server:
        server.enqueue("[[A]]", "[[A]]", "no verdict", "[[C]]")  # c1 has no verdict in one order: 1 of 2 unjudged
        argv = ["eval", "--task", "win_rate", "--dataset_name", str(data), "--output_dir", str(tmp_path / "out"),
                "--answers_file", str(tmp_path / "a.jsonl"), "--answers_file_b", str(tmp_path / "b.jsonl"),
                "--llm_base_url", server.url, "--llm_model", "judge", "--llm_concurrency", "1"]
        assert cli_main(argv) == 1
        assert cli_main([*argv, "--max_failure_rate", "0.5"]) == 0  # the rerun sends nothing and only re-decides
        assert len(server.chat_requests()) == 4


@pytest.mark.integration
def test_missing_images_skipped_over_the_limit_exit_1(tmp_path, capsys):
    data = write_eval_parquet(tmp_path / "e.parquet", EVAL_ROWS[:4])
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"question_id": r["id"], "text": "yes"}) + "\n" for r in EVAL_ROWS[:4]))
    argv = ["eval", "--dataset_name", str(data), "--output_dir", str(tmp_path / "o"), "--answers_file", str(answers),
            "--max_failure_rate", "0"]
    assert cli_main(argv) == 0
    import datasets

    rows = datasets.load_dataset("parquet", data_files=str(data), split="train").to_list()
    rows[0]["image"] = None
    datasets.Dataset.from_list(rows, features=datasets.load_dataset("parquet", data_files=str(data),
                                                                   split="train").features).to_parquet(str(data))
    answers.write_text("".join(json.dumps({"question_id": r["id"], "text": "yes"}) + "\n" for r in EVAL_ROWS[1:4]))
    assert cli_main([*argv, "--on_missing_image", "skip"]) == 1
    assert "1 of 4 questions failed (25%)" in capsys.readouterr().err
    assert json.loads((tmp_path / "o" / "results.json").read_text())["skipped"] == {"missing_image": 1}


@pytest.mark.integration
def test_eval_dataset_not_on_the_hub_is_exit_2_after_one_request(tmp_path, hub_server, capsys):
    answers = tmp_path / "a.jsonl"
    answers.write_text(json.dumps({"question_id": "q1", "text": "yes"}) + "\n")
    argv = ["eval", "--dataset_name", "nobody/no-such-benchmark", "--output_dir", str(tmp_path / "o"),
            "--answers_file", str(answers)]
    assert cli_main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "hf-medvlm eval: error: dataset_name 'nobody/no-such-benchmark' is neither a local path nor a dataset repo on "
        f"{hub_server.url} (or it is private and HF_TOKEN has no access to it)")
    assert sum("no-such-benchmark" in path for _, path, _ in hub_server.requests) == 1
    assert not (tmp_path / "o").exists()
