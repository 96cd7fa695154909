"""Rank-based metrics of seed 002 Table 1 on preference pairs, and Precision@K / F1@K curves (Figure 2, right).

Pair metrics pool the two candidates of every pair into one ranking, with the preferred candidate as positive:
- accuracy: fraction of pairs whose preferred candidate scores higher (ties count one half);
- AUC: ROC-AUC of the pooled ranking;
- mean rank (lower is better): mean rank of the preferred candidates in the pooled ranking (1 = best score), divided
  by the number of ranked candidates; random scores give about 0.5 and a perfect model 0.25;
- MAP: average precision of the pooled ranking.
The MR convention reproduces Table 1's numbers (e.g. AUC 61.90 -> MR 44.04, since MR ~ 1/4 + (1 - AUC) / 2).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score, roc_auc_score

__all__ = ["pair_metrics", "precision_f1_at_k", "format_metrics_table"]


def pair_metrics(pair_scores, labels) -> dict[str, float]:
    """`pair_scores` `(N, 2)` scores `[a, b]`, `labels` `(N,)` index of the preferred candidate."""
    pair_scores, labels = np.asarray(pair_scores, dtype=np.float64), np.asarray(labels).astype(int)
    rows = np.arange(len(labels))
    preferred, other = pair_scores[rows, labels], pair_scores[rows, 1 - labels]
    pooled = np.concatenate([preferred, other])
    truth = np.concatenate([np.ones(len(preferred)), np.zeros(len(other))])
    ranks = rankdata(-pooled, method="average")[: len(preferred)]
    return {
        "accuracy": float(np.mean((preferred > other) + 0.5 * (preferred == other))),
        "auc": float(roc_auc_score(truth, pooled)),
        "mean_rank": float(ranks.mean() / len(pooled)),
        "map": float(average_precision_score(truth, pooled)),
    }


def precision_f1_at_k(scores, is_good, percents) -> dict[str, list[float]]:
    """Precision and F1 of "the top K% by score" against binary labels, for each K in `percents`."""
    scores, is_good = np.asarray(scores, dtype=np.float64), np.asarray(is_good).astype(bool)
    hits = np.cumsum(is_good[np.argsort(-scores, kind="stable")])
    ks = np.maximum(1, np.round(len(scores) * np.asarray(percents, dtype=np.float64) / 100).astype(int))
    precision, recall = hits[ks - 1] / ks, hits[ks - 1] / max(int(is_good.sum()), 1)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(len(ks)), where=precision + recall > 0)
    return {"percent": [float(p) for p in percents], "precision": precision.tolist(), "f1": f1.tolist()}


def format_metrics_table(rows: list[dict], key: str = "w") -> str:
    """A Markdown table like seed 002 Table 1: one row per `key` value, metrics in %."""
    lines = [f"| {key} | ACC ↑ | AUC ↑ | MR ↓ | MAP ↑ |", "|---|---|---|---|---|"]
    for row in rows:
        cells = [f"{100 * row[m]:.2f}" for m in ("accuracy", "auc", "mean_rank", "map")]
        lines.append(f"| {row[key]:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
