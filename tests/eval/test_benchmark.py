"""Question loading, answers files, id checks, sharding, scoring and model-index entries (no model needed)."""

import json

import pytest
from huggingface_hub import EvalResult

from hf_medvlm.eval.benchmark import (
    append_answers,
    check_answer_ids,
    load_eval_dataset,
    model_index_entries,
    questions_from_dataset,
    read_answers,
    score_answers,
    shard,
)
from tests.eval.conftest import EVAL_ROWS, write_eval_parquet


def test_questions_from_parquet(vqa_parquet):
    questions, skipped = questions_from_dataset(load_eval_dataset(str(vqa_parquet)), "vqa", "{question} Briefly.")
    assert [q.id for q in questions] == ["q1", "q2", "q3", "q4", "q5"]
    assert questions[0].prompt == "Is there a pleural effusion? Briefly."
    assert questions[0].load_images()[0].size == (48, 40) and not skipped


def test_missing_image_raises_or_is_counted(tmp_path):
    import datasets

    path = tmp_path / "eval.parquet"
    write_eval_parquet(path, EVAL_ROWS[:2], images=[None, None])
    dataset = load_eval_dataset(str(path))
    with pytest.raises(FileNotFoundError, match="record 'q1'.*image"):
        questions_from_dataset(dataset, "vqa")
    questions, skipped = questions_from_dataset(dataset, "vqa", on_missing_image="skip")
    assert questions == [] and skipped == {"missing_image": 2}
    # a stored path that does not exist on disk
    ds = datasets.Dataset.from_list([dict(EVAL_ROWS[0], image={"path": str(tmp_path / "gone.png"), "bytes": None})],
                                    features=datasets.Features({**{k: datasets.Value("string") for k in EVAL_ROWS[0]},
                                                                "image": datasets.Image(decode=False)}))
    with pytest.raises(FileNotFoundError, match="gone.png is missing"):
        questions_from_dataset(ds, "vqa")


def test_bad_records_are_named(tmp_path):
    path = write_eval_parquet(tmp_path / "e.parquet", [dict(EVAL_ROWS[0], answer_type="OPEN?")])
    with pytest.raises(ValueError, match="record 'q1'.*answer_type"):
        questions_from_dataset(load_eval_dataset(str(path)), "vqa")
    path = write_eval_parquet(tmp_path / "d.parquet", [EVAL_ROWS[0], EVAL_ROWS[0]])
    with pytest.raises(ValueError, match="duplicate question id"):
        questions_from_dataset(load_eval_dataset(str(path)), "vqa")
    path = write_eval_parquet(tmp_path / "m.parquet", [dict(EVAL_ROWS[0], options=["a", "b"], answer="c")])
    with pytest.raises(ValueError, match="record 'q1'.*not one of the options"):
        questions_from_dataset(load_eval_dataset(str(path)), "multiple_choice")


def test_answers_file_roundtrip_ignores_truncated_last_line(tmp_path):
    path = tmp_path / "answers.jsonl"
    append_answers(path, [dict(question_id="q1", text="yes"), dict(question_id="q2", text="no")])
    with path.open("a") as f:
        f.write('{"question_id": "q3", "te')  # killed mid-write
    assert set(read_answers(path)) == {"q1", "q2"}
    path.write_text('{"question_id": "q1"\n{"question_id": "q2", "text": "x"}\n')
    with pytest.raises(ValueError, match="answers.jsonl, line 1: not valid JSON"):
        read_answers(path)


def test_check_answer_ids(vqa_parquet):
    questions, _ = questions_from_dataset(load_eval_dataset(str(vqa_parquet)), "vqa")
    answers = {q.id: {"text": "x"} for q in questions}
    check_answer_ids(answers, questions, "a.jsonl", complete=True)
    with pytest.raises(ValueError, match="1 answer id\\(s\\) match no question.*other"):
        check_answer_ids({**answers, "other-7": {"text": "x"}}, questions, "a.jsonl", complete=False)
    del answers["q3"]
    with pytest.raises(ValueError, match="1 question\\(s\\) have no answer.*q3"):
        check_answer_ids(answers, questions, "a.jsonl", complete=True)


def test_shard_covers_each_item_once():
    items = list(range(11))
    parts = [shard(items, r, 3) for r in range(3)]
    assert sorted(sum(parts, [])) == items and all(parts)


def test_scores_in_percent_and_model_index_entries_are_valid(vqa_parquet):
    questions, _ = questions_from_dataset(load_eval_dataset(str(vqa_parquet)), "vqa")
    texts = {"q1": "Yes.", "q2": "There is a nodule.", "q3": "liver", "q4": "right lung", "q5": ""}
    answers = {k: {"text": v} for k, v in texts.items()}
    scores = score_answers(questions, answers, "vqa", ["llava_med", "strict"])
    assert scores["llava_med"]["closed_accuracy"] == 100.0  # "nodule" trap
    assert scores["strict"]["closed_accuracy"] == 50.0
    assert scores["llava_med"]["open_recall"] == pytest.approx(100 * (1 + 0.5 + 0) / 3)
    assert scores["llava_med"]["num_empty_predictions"] == 1
    entries = model_index_entries(scores, dataset_type="flaviagiammarino/vqa-rad", dataset_name="VQA-RAD",
                                  dataset_config=None, dataset_split="test")
    names = [e["metric_name"] for e in entries]
    assert "closed accuracy (%, llava_med)" in names and "closed accuracy (%, strict)" in names
    assert all("llava_med" in n or "strict" in n for n in names)
    for entry in entries:
        EvalResult(**entry)
    json.dumps(entries)
    from hf_medvlm.hub import render_model_card

    card = render_model_card(repo_id="me/model", eval_results=entries)
    assert "name: closed accuracy (%, strict)" in card and "model-index" in card


def test_rank_files_merge_into_question_order(tmp_path, vqa_parquet):
    """What `accelerate`/torchrun ranks leave behind (one answers.rankN.jsonl each) merges into answers.jsonl."""
    from hf_medvlm.eval.evaluation import merge_answers

    questions, _ = questions_from_dataset(load_eval_dataset(str(vqa_parquet)), "vqa")
    answers_path = tmp_path / "answers.jsonl"
    append_answers(answers_path, [dict(question_id="q2", text="from an earlier run")])
    todo = [q for q in questions if q.id != "q2"]
    for rank in range(2):
        append_answers(tmp_path / f"answers.rank{rank}.jsonl",
                       [dict(question_id=q.id, text=f"rank {rank}") for q in shard(todo, rank, 2)])
    merged = merge_answers(questions, answers_path)
    lines = [json.loads(line) for line in answers_path.read_text().splitlines()]
    assert [r["question_id"] for r in lines] == ["q1", "q2", "q3", "q4", "q5"]
    assert [r["text"] for r in lines] == ["rank 0", "from an earlier run", "rank 1", "rank 0", "rank 1"]
    assert set(merged) == {q.id for q in questions}
    assert not list(tmp_path.glob("answers.rank*.jsonl"))


def test_medical_multimodal_eval_shape(tmp_path):
    """No id column, image paths in a list, answer given as option text, open rows skipped and counted."""
    from tests.conftest import make_rgb_image

    (tmp_path / "images").mkdir()
    make_rgb_image(seed=1).save(tmp_path / "images" / "a.png")
    rows = [dict(question="Which organ?", options=["liver", "spleen"], answer="spleen", image=["images/a.png"],
                 dataset="SLAKE", subset="", question_type=""),
            dict(question="Describe.", options=[], answer="text", image=["images/a.png"], dataset="SLAKE",
                 subset="", question_type="open")]
    path = tmp_path / "mmed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    questions, skipped = questions_from_dataset(load_eval_dataset(str(path)), "multiple_choice",
                                                data_dir=str(tmp_path))
    assert [q.id for q in questions] == ["0"] and questions[0].gold == "B" and questions[0].group == "SLAKE"
    assert skipped == {"not_multiple_choice": 1}
    assert questions[0].prompt.startswith("Which organ?\nA. liver\nB. spleen\n")
