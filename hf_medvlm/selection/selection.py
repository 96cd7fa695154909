"""Scoring a dataset with a trained selector and picking the top K% (seed 002 §3.2 "Data selection", §4.2).

Two ways to pick, both offered because the paper and its code disagree:
- `strategy="global"`: the top K% of all samples by score -- what the released code (`filter/filter.py`) does.
- `strategy="clusters"`: K-means on the selector's features, then an equal share of the top-ranked samples from every
  cluster (clusters too small for their share give all they have, the rest is shared among the others) -- what the
  paper text describes ("cluster all the data samples into K groups and uniformly select top-ranked data in each").
"""

from __future__ import annotations

import bisect
import itertools
import logging
from pathlib import Path

import datasets
import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.writer import write_dataset_folder
from .data import SkipReport, candidate_from_row, encode_candidates

__all__ = ["score_dataset", "pick_indices", "write_subsets", "plot_precision_f1", "STRATEGIES"]

logger = logging.getLogger(__name__)
STRATEGIES = ("global", "clusters")


def _candidates(dataset: datasets.Dataset, qa_rounds: int, report: SkipReport):
    """`(row index, candidate)` for every scorable row; the others are counted in `report` by reason."""
    for index, row in enumerate(tqdm(dataset, desc="scoring", unit="sample")):
        try:
            yield index, candidate_from_row(row, qa_rounds)
        except ValueError as err:
            report.add(str(err), row.get("id", index))


def score_dataset(model, processor, dataset: datasets.Dataset, *, batch_size: int = 32, max_length: int = 256,
                  with_features: bool = False) -> tuple[np.ndarray, np.ndarray | None, SkipReport]:
    """Scores (NaN where a row cannot be scored), optional features and a report of unscorable rows by reason (and of
    texts shortened to `max_length` tokens, `report.truncated`)."""
    model.eval()
    scores = np.full(len(dataset), np.nan, dtype=np.float32)
    features, report = None, SkipReport()
    candidates = _candidates(dataset, model.config.qa_rounds, report)
    while batch := list(itertools.islice(candidates, batch_size)):
        rows = [index for index, _ in batch]
        inputs, truncated = encode_candidates(processor, [c for _, c in batch], max_length=max_length,
                                              include_caption=model.config.include_caption)
        report.truncated.update(truncated)
        with torch.no_grad():
            out = model(**{k: v.to(model.device) for k, v in inputs.items()}, output_features=with_features)
        scores[rows] = out.logits.float().cpu().numpy()
        if with_features:
            if features is None:
                features = np.full((len(dataset), out.features.shape[1]), np.nan, dtype=np.float32)
            features[rows] = out.features.float().cpu().numpy()
    if report.total:
        logger.warning("score: %s", report.summary())
    if report.truncated:
        logger.warning("score: texts cut to %d tokens (question and answer kept unless qa_truncated): %s", max_length,
                       dict(report.truncated))
    return scores, features, report


def _cluster_quotas(sizes: np.ndarray, total: int) -> np.ndarray:
    """Equal shares of `total` over clusters, capped by cluster size, with leftovers re-shared (water filling): every
    cluster gets up to the highest common level that fits in `total`, the first clusters with room one more."""
    level = bisect.bisect_right(range(max(sizes, default=0) + 1), total,
                                key=lambda n: np.minimum(sizes, n).sum()) - 1
    quotas = np.minimum(sizes, level)
    quotas[np.flatnonzero(sizes > level)[: total - quotas.sum()]] += 1
    return quotas


def pick_indices(scores, percent: float, *, strategy: str = "global", features=None, num_clusters: int = 10,
                 seed: int = 0, cluster_labels=None) -> np.ndarray:
    """Row indices of the selected top `percent`% (NaN scores are never picked), best first within each group."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}.")
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent}.")
    scores = np.asarray(scores, dtype=np.float64)
    valid = np.flatnonzero(~np.isnan(scores))
    total = int(round(len(valid) * percent / 100))
    ranked = valid[np.argsort(-scores[valid], kind="stable")]
    if strategy == "global":
        return ranked[:total]
    if cluster_labels is None:
        cluster_labels = cluster_features(features, valid, num_clusters, seed)
    labels_of_ranked = np.asarray(cluster_labels)[ranked]
    clusters, sizes = np.unique(labels_of_ranked, return_counts=True)
    quotas = _cluster_quotas(sizes, total)
    picked = [ranked[labels_of_ranked == c][:q] for c, q in zip(clusters, quotas)]
    picked = np.concatenate(picked) if picked else np.array([], dtype=int)
    return picked[np.argsort(-scores[picked], kind="stable")]


def cluster_features(features, valid: np.ndarray, num_clusters: int, seed: int) -> np.ndarray:
    """K-means cluster id per row (-1 for rows without features)."""
    from sklearn.cluster import KMeans

    if features is None:
        raise ValueError("strategy 'clusters' needs selector features: run `select score --save_features true`.")
    labels = np.full(len(features), -1)
    kmeans = KMeans(n_clusters=min(num_clusters, len(valid)), random_state=seed, n_init=4)
    labels[valid] = kmeans.fit_predict(np.asarray(features, dtype=np.float32)[valid])
    return labels


def write_subsets(dataset: datasets.Dataset, selections: dict[str, np.ndarray], output_dir: str | Path,
                  split: str = "train") -> dict[str, int]:
    """Write each selection as a dataset config (`{output_dir}/{name}/{split}-*.parquet`, listed in README.md's
    `configs:`), so `load_dataset(output_dir, name)` loads it; returns rows per config."""
    counts = {}
    for name, indices in selections.items():
        subset = dataset.select([int(i) for i in indices])
        result = write_dataset_folder(output_dir, name, split, iter(subset), subset.features, total=len(subset))
        counts[name] = result["num_rows"]
    return counts


def plot_precision_f1(curves: dict, path: str | Path, title: str = "Selection quality vs top K%",
                      marks: list[float] = ()) -> Path:
    """Precision@K and F1@K against K% (seed 002 Figure 2, right) as a PNG; `marks` draws the picked K% as lines."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(curves["percent"], curves["precision"], marker="o", markersize=3, label="Precision@K")
    ax.plot(curves["percent"], curves["f1"], marker="s", markersize=3, label="F1@K")
    for mark in marks:
        ax.axvline(mark, color="grey", linestyle="--", linewidth=0.8)
    ax.set(xlabel="top K% of samples by selector score", ylabel="score", ylim=(0, 1.02), title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
