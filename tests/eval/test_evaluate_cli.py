"""`hf-medvlm eval` end to end on the tiny model: answers, results, model-index, resume, bad answers files."""

import json
import pytest

from hf_medvlm.cli import main as cli_main
from hf_medvlm.commands.eval import parse_args
from tests.eval.conftest import EVAL_ROWS, write_eval_parquet

pytestmark = pytest.mark.integration


def _run(tmp_path, model_dir, data, *extra):
    out = tmp_path / "out"
    argv = ["eval", "--model_name_or_path", str(model_dir), "--dataset_name", str(data), "--output_dir", str(out),
            "--max_new_tokens", "4", "--batch_size", "4", "--benchmark_name", "tiny-vqa", *extra]
    return cli_main(argv), out


def test_eval_end_to_end_and_resume(tmp_path, tiny_model_dir, vqa_parquet, capsys):
    code, out = _run(tmp_path, tiny_model_dir, vqa_parquet)
    assert code == 0
    answers = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    assert [a["question_id"] for a in answers] == [r["id"] for r in EVAL_ROWS]
    results = json.loads((out / "results.json").read_text())
    assert set(results["scores"]) == {"llava_med", "strict"}
    assert results["scores"]["llava_med"]["num_closed"] == 2 and results["num_questions"] == 5
    entries = json.loads((out / "model_index.json").read_text())
    assert entries and all(e["metric_name"].endswith(("(%, llava_med)", "(%, strict)")) for e in entries)
    printed = capsys.readouterr().out
    assert "llava_med" in printed and "strict" in printed

    # Resume: keep a marked answer for q1, drop q2..q5; only the missing ones are generated again.
    kept = dict(answers[0], text="Yes, marker.")
    (out / "answers.jsonl").write_text(json.dumps(kept) + "\n")
    code, out = _run(tmp_path, tiny_model_dir, vqa_parquet)
    assert code == 0
    again = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    assert again[0]["text"] == "Yes, marker."
    assert [a["text"] for a in again[1:]] == [a["text"] for a in answers[1:]]  # deterministic
    assert not list(out.glob("answers.rank*.jsonl"))


def test_answers_file_of_other_questions_is_an_error(tmp_path, vqa_parquet, capsys):
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps({"question_id": f"x{i}", "text": "yes"}) + "\n" for i in range(5)))
    argv = ["eval", "--dataset_name", str(vqa_parquet), "--output_dir", str(tmp_path / "o"), "--answers_file",
            str(other)]
    assert cli_main(argv) == 2
    assert "match no question" in capsys.readouterr().err


def test_score_only_with_answers_file(tmp_path, vqa_parquet):
    answers = tmp_path / "a.jsonl"
    texts = ["Yes.", "There is a nodule.", "liver", "right lung", ""]
    answers.write_text("".join(json.dumps({"question_id": r["id"], "text": t}) + "\n" for r, t in zip(EVAL_ROWS, texts)))
    argv = ["eval", "--dataset_name", str(vqa_parquet), "--output_dir", str(tmp_path / "o"), "--answers_file",
            str(answers)]
    assert cli_main(argv) == 0
    scores = json.loads((tmp_path / "o" / "results.json").read_text())["scores"]
    assert scores["llava_med"]["closed_accuracy"] == 100.0 and scores["strict"]["closed_accuracy"] == 50.0


def test_multiple_choice_end_to_end(tmp_path, tiny_model_dir):
    rows = [dict(id=f"m{i}", question="Which organ?", answer="liver", answer_type="closed",
                 options=["liver", "spleen", "kidney"], answer_label="A") for i in range(3)]
    data = write_eval_parquet(tmp_path / "mc.parquet", rows)
    code, out = _run(tmp_path, tiny_model_dir, data, "--task", "multiple_choice")
    assert code == 0
    answers = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    assert answers[0]["prompt"].endswith("A. liver\nB. spleen\nC. kidney\n"
                                         "Answer with the option's letter from the given choices directly.")
    assert [a["question_id"] for a in answers] == ["m0", "m1", "m2"]

    # Scored again from scripted answers, one decided by each rule: "B" by its letter (wrong), "The liver." by the
    # option text it names (right), "kidny" by the closest option (kidney, wrong).
    scripted = tmp_path / "scripted.jsonl"
    scripted.write_text("".join(json.dumps({"question_id": f"m{i}", "text": t}) + "\n"
                                for i, t in enumerate(["B", "The liver.", "kidny"])))
    argv = ["eval", "--task", "multiple_choice", "--dataset_name", str(data), "--output_dir", str(tmp_path / "scored"),
            "--answers_file", str(scripted)]
    assert cli_main(argv) == 0
    result = json.loads((tmp_path / "scored" / "results.json").read_text())["scores"]["huatuo_mc"]
    assert result["decided_by"] == {"letter": 1, "option_text": 1, "closest": 1}
    assert result["accuracy"] == pytest.approx(100 / 3)


def test_parse_args_config_and_overrides(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("dataset_name: x\noutput_dir: o\nmodel_name_or_path: m\nprotocols: [strict]\n")
    args, _ = parse_args(["--config", str(config), "--batch_size", "2"])
    assert args.protocols == ["strict"] and args.batch_size == 2
    with pytest.raises(ValueError, match="protocols"):
        parse_args(["--config", str(config), "--protocols", "paper"])


def test_help_has_example(capsys):
    assert cli_main(["eval", "--help"]) == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "--protocols" in out and "--llm_base_url" in out


def test_demo_recipe_on_embedded_demo_eval_split(tmp_path, tiny_model_dir, repo_root):
    from hf_medvlm.data.demo import write_demo_dataset

    data = write_demo_dataset(tmp_path / "demo-data")
    out = tmp_path / "demo-out"
    argv = ["eval", "--config", str(repo_root / "recipes/tiny/eval/demo.yaml"), "--model_name_or_path",
            str(tiny_model_dir), "--dataset_name", str(data), "--output_dir", str(out), "--max_samples", "12",
            "--max_new_tokens", "4"]
    assert cli_main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["num_questions"] == 12 and set(results["scores"]) == {"llava_med", "strict"}
    counts = results["scores"]["strict"]
    assert counts["num_open"] + counts["num_closed"] == 12
    assert len((out / "answers.jsonl").read_text().splitlines()) == 12


def test_stale_answers_of_another_benchmark_in_output_dir_is_an_error(tmp_path, vqa_parquet, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "answers.jsonl").write_text(json.dumps({"question_id": "slake-17", "text": "yes"}) + "\n")
    argv = ["eval", "--model_name_or_path", "unused", "--dataset_name", str(vqa_parquet), "--output_dir", str(out)]
    assert cli_main(argv) == 2
    assert "answers.jsonl: 1 answer id(s) match no question" in capsys.readouterr().err
