"""Scoring a dataset with a trained selector and picking the top K% (seed 002 §3.2 "Data selection", §4.2).

Two ways to pick, both offered because the paper and its code disagree:
- `strategy="global"`: the top K% of all samples by score -- what the released code (`filter/filter.py`) does.
- `strategy="clusters"`: K-means on the selector's features, then an equal share of the top-ranked samples from every
  cluster (clusters too small for their share give all they have, the rest is shared among the others) -- what the
  paper text describes ("cluster all the data samples into K groups and uniformly select top-ranked data in each").

Contents: `score_dataset`, `pick_indices`, `write_subsets`, `plot_precision_f1`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import datasets
import numpy as np
import torch
from tqdm.auto import tqdm

from .data import SkipReport, candidate_from_row, candidate_text

__all__ = ["score_dataset", "pick_indices", "write_subsets", "plot_precision_f1", "STRATEGIES"]

logger = logging.getLogger(__name__)
STRATEGIES = ("global", "clusters")


def _score_batch(model, processor, candidates: list[dict], max_length: int, with_features: bool):
    texts = [candidate_text(c["caption"], c["question"], c["answer"], model.config.include_caption) for c in candidates]
    images = [c["image"].convert("RGB") for c in candidates]
    batch = processor(text=texts, images=images, padding=True, truncation=True, max_length=max_length,
                      return_tensors="pt")
    inputs = {k: batch[k].to(model.device) for k in ("input_ids", "attention_mask", "pixel_values") if k in batch}
    with torch.no_grad():
        out = model(**inputs, output_features=with_features)
    features = out.features.float().cpu().numpy() if with_features else None
    return out.logits.float().cpu().numpy(), features


def score_dataset(model, processor, dataset: datasets.Dataset, *, batch_size: int = 32, max_length: int = 256,
                  with_features: bool = False) -> tuple[np.ndarray, np.ndarray | None, SkipReport]:
    """Scores (NaN where a row cannot be scored), optional features and a report of unscorable rows by reason."""
    model.eval()
    scores = np.full(len(dataset), np.nan, dtype=np.float32)
    features, report, pending = None, SkipReport(), []

    def flush():
        nonlocal features
        batch_scores, batch_features = _score_batch(model, processor, [c for _, c in pending], max_length,
                                                    with_features)
        rows = [i for i, _ in pending]
        scores[rows] = batch_scores
        if with_features:
            if features is None:
                features = np.full((len(dataset), batch_features.shape[1]), np.nan, dtype=np.float32)
            features[rows] = batch_features
        pending.clear()

    for index, row in enumerate(tqdm(dataset, desc="scoring", unit="sample")):
        try:
            pending.append((index, candidate_from_row(row, model.config.qa_rounds)))
        except ValueError as err:
            report.add(str(err), row.get("id", index))
        if len(pending) == batch_size:
            flush()
    if pending:
        flush()
    if report.total:
        logger.warning("score: %s", report.summary())
    return scores, features, report


def _cluster_quotas(sizes: np.ndarray, total: int) -> np.ndarray:
    """Equal shares of `total` over clusters, capped by cluster size, with leftovers re-shared (water filling)."""
    quotas = np.zeros(len(sizes), dtype=int)
    remaining = total
    while remaining > 0:
        open_clusters = np.flatnonzero(quotas < sizes)
        if len(open_clusters) == 0:
            break
        share = max(remaining // len(open_clusters), 1)
        for c in open_clusters:
            take = min(share, sizes[c] - quotas[c], remaining)
            quotas[c] += take
            remaining -= take
            if remaining == 0:
                break
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
    clusters = np.unique(labels_of_ranked)
    sizes = np.array([(labels_of_ranked == c).sum() for c in clusters])
    quotas = _cluster_quotas(sizes, total)
    picked = [ranked[labels_of_ranked == c][:q] for c, q in zip(clusters, quotas)]
    picked = np.concatenate(picked) if picked else np.array([], dtype=int)
    return picked[np.argsort(-scores[picked], kind="stable")]


def cluster_features(features, valid: np.ndarray, num_clusters: int, seed: int) -> np.ndarray:
    """K-means cluster id per row (-1 for rows without features)."""
    from sklearn.cluster import KMeans

    if features is None:
        raise ValueError("strategy 'clusters' needs selector features: run `select score --save_features true`.")
    features = np.asarray(features, dtype=np.float32)
    labels = np.full(len(features), -1)
    k = min(num_clusters, len(valid))
    labels[valid] = KMeans(n_clusters=k, random_state=seed, n_init=4).fit_predict(features[valid])
    return labels


def write_subsets(dataset: datasets.Dataset, selections: dict[str, np.ndarray], output_dir: str | Path,
                  split: str = "train") -> dict[str, int]:
    """Write each selection as a dataset config (`{output_dir}/{name}/{split}-00000-of-00001.parquet`) and list the
    configs in `README.md`, so `load_dataset(output_dir, name)` loads them; returns rows per config."""
    output_dir = Path(output_dir)
    counts = {}
    for name, indices in selections.items():
        subset = dataset.select([int(i) for i in indices])
        path = output_dir / name / f"{split}-00000-of-00001.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        subset.to_parquet(str(path))
        counts[name] = len(subset)
    _write_configs_readme(output_dir, list(selections), split)
    return counts


def _write_configs_readme(output_dir: Path, names: list[str], split: str) -> None:
    lines = ["---", "configs:"]
    for name in names:
        lines += [f"- config_name: {name}", "  data_files:", f"  - split: {split}", f"    path: {name}/{split}-*.parquet"]
    lines += ["---", "", "# Selected subsets", "",
              "Subsets picked with the hf_medvlm BioMed-VITAL selection model (`hf-medvlm select pick`).", ""]
    (output_dir / "README.md").write_text("\n".join(lines))


def plot_precision_f1(curves: dict, path: str | Path, title: str = "Selection quality vs top K%") -> Path:
    """Precision@K and F1@K against K% (seed 002 Figure 2, right) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(curves["percent"], curves["precision"], marker="o", markersize=3, label="Precision@K")
    ax.plot(curves["percent"], curves["f1"], marker="s", markersize=3, label="F1@K")
    ax.set_xlabel("top K% of samples by selector score")
    ax.set_ylabel("score")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
