"""PubMedVision data filters (Chen et al., 2024, Section 3.1 and Appendix B): medical-lexicon term count, image
resolution, and caption-embedding near-duplicate removal. The medical/non-medical image classifier lives in
``image_classifier.py``.

Each filter is a pure function over one record (or one array of embeddings), so that the pipeline can count kept and
dropped records per stage.
"""

from __future__ import annotations

import math
import re
from importlib import resources
from pathlib import Path

import numpy as np

__all__ = [
    "DEFAULT_LEXICON",
    "load_lexicon",
    "count_medical_terms",
    "image_size_ok",
    "embed_captions",
    "find_near_duplicates",
]

DEFAULT_LEXICON = "medical_lexicon.txt"  # packaged, small; see the header of the file for the full UMLS source
_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")


def load_lexicon(path: str | Path | None = None) -> frozenset[str]:
    """Read a lexicon (one term per line, '#' comments); ``None`` loads the small packaged default."""
    if path is None:
        text = resources.files(__package__).joinpath("resources", DEFAULT_LEXICON).read_text(encoding="utf-8")
    else:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"lexicon file {path} does not exist")
        text = path.read_text(encoding="utf-8")
    terms = {" ".join(_WORD.findall(line.split("#", 1)[0].lower())) for line in text.splitlines()}
    terms.discard("")
    if not terms:
        raise ValueError(f"lexicon file {path or DEFAULT_LEXICON} holds no terms")
    return frozenset(terms)


def count_medical_terms(text: str, lexicon: frozenset[str], max_words: int = 4) -> int:
    """Number of *unique* lexicon terms in ``text`` (single- and multi-word terms, case-insensitive)."""
    words = _WORD.findall(text.lower())
    found = set()
    for n in range(1, max_words + 1):
        for i in range(len(words) - n + 1):
            gram = " ".join(words[i:i + n])
            if gram in lexicon:
                found.add(gram)
    return len(found)


def image_size_ok(size: tuple[int, int], min_width: int = 336, min_height: int = 336) -> bool:
    """PubMedVision keeps images of at least 336x336 pixels (``size`` is PIL's ``(width, height)``)."""
    width, height = size
    return width >= min_width and height >= min_height


def embed_captions(
    captions: list[str], model_name_or_path: str = "sentence-transformers/all-mpnet-base-v2", *,
    normalize: bool = True, batch_size: int = 64, show_progress_bar: bool = True, device: str | None = None,
) -> np.ndarray:
    """Sentence-transformers embeddings (float32). ``normalize=False`` also strips a model's own ``Normalize``
    module, giving the raw pooled vectors whose dot products PubMedVision thresholded at 480."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Normalize

    model = SentenceTransformer(model_name_or_path, device=device)
    if not normalize:
        model = SentenceTransformer(modules=[m for m in model if not isinstance(m, Normalize)], device=device)
    vectors = model.encode(
        captions, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=normalize,
        show_progress_bar=show_progress_bar,
    )
    return np.asarray(vectors, dtype=np.float32)


def _coarse_centroids(embeddings: np.ndarray, num_cells: int, seed: int, iterations: int = 4) -> np.ndarray:
    """A few Lloyd iterations on a sample, seeded with random rows: cheap (sklearn's k-means on a million 768-d
    vectors takes minutes) and good enough for bucketing, since recall comes from probing several cells."""
    rng = np.random.default_rng(seed)
    sample = embeddings[rng.choice(len(embeddings), size=min(len(embeddings), 20 * num_cells), replace=False)]
    centroids = sample[rng.choice(len(sample), size=num_cells, replace=False)].copy()
    for _ in range(iterations):
        assignment = (sample @ centroids.T).argmax(axis=1)
        for cell in np.unique(assignment):
            centroids[cell] = sample[assignment == cell].mean(axis=0)
    return centroids


def _assign_cells(embeddings: np.ndarray, num_cells: int, nprobe: int, seed: int) -> np.ndarray:
    """IVF-style coarse quantiser: each vector's ``nprobe`` most similar centroids (its home cell first)."""
    if num_cells <= 1:
        return np.zeros((len(embeddings), 1), dtype=np.int64)
    centroids = _coarse_centroids(embeddings, num_cells, seed)
    nprobe = min(nprobe, num_cells)
    probes = np.empty((len(embeddings), nprobe), dtype=np.int64)
    for start in range(0, len(embeddings), 8192):
        sims = embeddings[start:start + 8192] @ centroids.T
        top = np.argpartition(-sims, nprobe - 1, axis=1)[:, :nprobe]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
        probes[start:start + 8192] = np.take_along_axis(top, order, axis=1)
    return probes


def _inverted_lists(probes: np.ndarray, num_cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows probing each cell, as one sorted index array plus per-cell offsets (CSR layout)."""
    flat = probes.ravel()
    order = np.argsort(flat, kind="stable")
    offsets = np.searchsorted(flat[order], np.arange(num_cells + 1))
    return order // probes.shape[1], offsets


def _candidate_edges(embeddings, probes, num_cells, threshold, block_size):
    """Pairs (later row i, earlier row j) with similarity > threshold, where j's home cell is probed by i."""
    homes, home_offsets = _inverted_lists(probes[:, :1], num_cells)
    queries, query_offsets = _inverted_lists(probes, num_cells)
    edges_i, edges_j = [], []
    for cell in range(num_cells):
        members = homes[home_offsets[cell]:home_offsets[cell + 1]]
        if not len(members):
            continue
        member_vectors = embeddings[members]
        cell_queries = queries[query_offsets[cell]:query_offsets[cell + 1]]
        for start in range(0, len(cell_queries), block_size):
            rows = cell_queries[start:start + block_size]
            ii, jj = np.nonzero((embeddings[rows] @ member_vectors.T) > threshold)
            earlier = members[jj] < rows[ii]
            edges_i.append(rows[ii[earlier]])
            edges_j.append(members[jj[earlier]])
    if not edges_i:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(edges_i), np.concatenate(edges_j)


def find_near_duplicates(
    embeddings: np.ndarray, threshold: float, *, num_cells: int | None = None, nprobe: int = 8,
    block_size: int = 1024, seed: int = 0,
) -> np.ndarray:
    """Greedy near-duplicate removal in input order: returns, per row, the index of the earlier kept row it
    duplicates (similarity ``> threshold``, dot product), or -1 if it is kept.

    Scales without an N x N matrix. Rows are bucketed by a coarse quantiser (``num_cells``, default ~sqrt(N); one
    cell, i.e. exact search, below 20,000 rows). Each row is compared, in blocks of ``block_size``, only with the rows
    whose home cell is among its ``nprobe`` nearest cells; the pairs above the threshold are then resolved greedily
    in input order. Memory is O(N x dim + block x cell); compute is about N x nprobe x N / num_cells dot products.
    Approximate above one cell: a duplicate whose nearest cells miss its original's home cell is not found (raise
    ``nprobe`` to trade speed for recall).
    """
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    n = len(embeddings)
    if num_cells is None:
        num_cells = 1 if n < 20_000 else int(math.sqrt(n))
    probes = _assign_cells(embeddings, num_cells, nprobe, seed)
    edges_i, edges_j = _candidate_edges(embeddings, probes, max(num_cells, 1), threshold, block_size)
    duplicate_of = np.full(n, -1, dtype=np.int64)
    order = np.lexsort((edges_j, edges_i))  # by later row, then earliest original first
    edges_i, edges_j = edges_i[order], edges_j[order]
    bounds = np.flatnonzero(np.diff(edges_i)) + 1
    for group_i, group_j in zip(np.split(edges_i, bounds), np.split(edges_j, bounds)):
        if not len(group_i):
            continue
        originals = group_j[duplicate_of[group_j] < 0]  # rows before i are already resolved
        if len(originals):
            duplicate_of[group_i[0]] = originals[0]
    return duplicate_of
