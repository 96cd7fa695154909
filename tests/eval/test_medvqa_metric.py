"""The packaged `evaluate` metric loads offline from its folder and returns the pure functions' results."""

import evaluate
import pytest

from hf_medvlm.eval import MEDVQA_METRIC_PATH
from hf_medvlm.eval.metrics import compute_mc_metrics, compute_vqa_metrics

PREDS = ["There is a nodule.", "Yes", "liver", "right kidney"]
REFS = ["no", "yes", "liver", "left kidney"]
TYPES = ["closed", "closed", "open", "open"]


@pytest.mark.parametrize("protocol", ["llava_med", "strict"])
def test_vqa_config_matches_pure_functions(protocol):
    metric = evaluate.load(MEDVQA_METRIC_PATH)
    result = metric.compute(predictions=PREDS, references=REFS, answer_types=TYPES, protocol=protocol)
    assert result == compute_vqa_metrics(PREDS, REFS, TYPES, protocol=protocol)
    assert result["protocol"] == protocol
    assert result["closed_accuracy"] == (1.0 if protocol == "llava_med" else 0.5)


def test_vqa_config_incremental_batches():
    metric = evaluate.load(MEDVQA_METRIC_PATH, "vqa")
    metric.add_batch(predictions=PREDS[:2], references=REFS[:2])
    metric.add_batch(predictions=PREDS[2:], references=REFS[2:])
    assert metric.compute(answer_types=TYPES)["open_recall"] == pytest.approx(0.75)


def test_multiple_choice_config():
    metric = evaluate.load(MEDVQA_METRIC_PATH, "multiple_choice")
    options = [["pneumonia", "edema"]] * 3
    result = metric.compute(predictions=["A", "edema", "x"], references=["A", "B", "?"], options=options)
    assert result == compute_mc_metrics(["A", "edema", "x"], options, ["A", "B", None])
    assert result["accuracy"] == pytest.approx(2 / 3)


def test_missing_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="answer_types"):
        evaluate.load(MEDVQA_METRIC_PATH).compute(predictions=["a"], references=["a"])
    with pytest.raises(ValueError, match="options"):
        evaluate.load(MEDVQA_METRIC_PATH, "multiple_choice").compute(predictions=["a"], references=["A"])
