"""`evaluate` metric for medical VQA: `evaluate.load("<path to this folder>")`, offline.

Configs: `"vqa"` (default; open/closed questions under the `llava_med` or `strict` protocol) and
`"multiple_choice"` (HuatuoGPT-Vision's letter matching). The scores come from `hf_medvlm.eval.metrics`; this file
only adapts them to the `evaluate.Metric` interface. Every result dict carries the protocol name.

Example:
    >>> import evaluate
    >>> from hf_medvlm.eval import MEDVQA_METRIC_PATH
    >>> medvqa = evaluate.load(MEDVQA_METRIC_PATH)
    >>> medvqa.compute(predictions=["Yes, it is."], references=["yes"], answer_types=["closed"], protocol="strict")
"""

import datasets
import evaluate

from hf_medvlm.eval.metrics import compute_mc_metrics, compute_vqa_metrics

_DESCRIPTION = """Medical VQA scores with a named protocol.
`llava_med`: LLaVA-Med v1.0's definitions to the letter (closed = substring yes/no gate + substring ground truth,
open = token recall, plus exact match, F1, precision, BLEU). `strict`: first yes/no word for closed questions,
normalised exact match and token F1 for open ones. `multiple_choice` config: HuatuoGPT-Vision's letter / option text /
closest-string matching, with how many answers each rule decided."""

_KWARGS_DESCRIPTION = """
Args (config "vqa"):
    predictions (list of str): model answers.
    references (list of str): ground-truth answers.
    answer_types (list of str): "open" or "closed" per question.
    protocol (str): "llava_med" (default) or "strict".
Args (config "multiple_choice"):
    predictions (list of str): model answers.
    references (list of str): gold option letters ("A".."K"; "?" is always wrong, as in the original).
    options (list of list of str): the options of each question, in letter order.
    datasets, subsets (list of str, optional): group names for per-group accuracy.
Returns: a dict with "protocol", the scores in [0, 1] (None where a question type is absent) and counts.
"""


class MedVQA(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, answer_types=None, protocol="llava_med", options=None,
                 datasets=None, subsets=None):
        if self.config_name == "multiple_choice":
            if options is None:
                raise ValueError("the multiple_choice config needs `options` (one list of option texts per question)")
            gold = [None if ref == "?" else ref for ref in references]
            return compute_mc_metrics(predictions, options, gold, datasets=datasets, subsets=subsets)
        if self.config_name not in ("default", "vqa"):
            raise ValueError(f"unknown config {self.config_name!r}; use 'vqa' or 'multiple_choice'")
        if answer_types is None:
            raise ValueError("`answer_types` is required: one of 'open'/'closed' per question")
        return compute_vqa_metrics(predictions, references, answer_types, protocol=protocol)
