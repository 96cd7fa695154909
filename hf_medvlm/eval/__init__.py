"""Evaluation: medical VQA metrics (two named protocols), multiple choice, batched generation.

Every score this package prints or writes names its protocol (`llava_med`, `strict`, `huatuo_mc`): the same answers
give very different numbers under different protocols, and the papers' numbers are only comparable within one.
"""

from pathlib import Path

__all__ = ["MEDVQA_METRIC_PATH"]

# `evaluate.load(MEDVQA_METRIC_PATH)` loads the packaged metric module offline.
MEDVQA_METRIC_PATH = str(Path(__file__).parent / "medvqa")
