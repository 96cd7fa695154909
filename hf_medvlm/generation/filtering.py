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
from tqdm.auto import tqdm

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
    source = resources.files(__package__).joinpath("resources", DEFAULT_LEXICON) if path is None else Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"lexicon file {source} does not exist")
    text = source.read_text(encoding="utf-8")
    terms = {" ".join(_WORD.findall(line.split("#", 1)[0].lower())) for line in text.splitlines()}
    terms.discard("")
    if not terms:
        raise ValueError(f"lexicon file {path or DEFAULT_LEXICON} holds no terms")
    return frozenset(terms)


def count_medical_terms(text: str, lexicon: frozenset[str], max_words: int = 4) -> int:
    """Number of *unique* lexicon terms in ``text`` (single- and multi-word terms, case-insensitive)."""
    words = _WORD.findall(text.lower())
    grams = {" ".join(words[i:i + n]) for n in range(1, max_words + 1) for i in range(len(words) - n + 1)}
    return len(grams & lexicon)


def image_size_ok(size: tuple[int, int], min_width: int = 336, min_height: int = 336) -> bool:
    """PubMedVision keeps images of at least 336x336 pixels (``size`` is PIL's ``(width, height)``)."""
    return size[0] >= min_width and size[1] >= min_height


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


def _build_index(embeddings: np.ndarray, num_cells: int, nprobe: int, seed: int):
    """An empty faiss inner-product index: exact (`Flat`) for one cell, else IVF trained on a sample of the rows."""
    import faiss

    dim = embeddings.shape[1]
    if num_cells <= 1:
        return faiss.IndexFlatIP(dim)
    index = faiss.index_factory(dim, f"IVF{num_cells},Flat", faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.cp.min_points_per_centroid = 1  # the sample below is deliberately small: training cost grows as cells^2
    rng = np.random.default_rng(seed)
    index.train(embeddings[rng.choice(len(embeddings), min(len(embeddings), 20 * num_cells), replace=False)])
    index.nprobe = nprobe
    return index


def _earliest_hits(index, queries: np.ndarray, threshold: float) -> np.ndarray:
    """Per query, the smallest index label whose similarity is > threshold, or -1."""
    hits = np.full(len(queries), -1, dtype=np.int64)
    if index.ntotal == 0:
        return hits
    lims, _, labels = index.range_search(queries, threshold)
    lims = lims.astype(np.int64)
    found = np.flatnonzero(lims[1:] > lims[:-1])
    if len(found):
        hits[found] = np.minimum.reduceat(labels, lims[found])
    return hits


def _greedy_within(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy dedup inside one batch, exactly: per row, the earlier kept row it duplicates, or -1."""
    import faiss

    duplicate_of = np.full(len(vectors), -1, dtype=np.int64)
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    lims, _, labels = flat.range_search(vectors, threshold)
    lims = lims.astype(np.int64)
    for row in np.flatnonzero(np.diff(lims)):  # a row's own match is not guaranteed: |x|^2 may be <= threshold
        earlier = np.sort(labels[lims[row]:lims[row + 1]])
        earlier = earlier[(earlier < row) & (duplicate_of[earlier] < 0)]  # rows before are already resolved
        if len(earlier):
            duplicate_of[row] = earlier[0]
    return duplicate_of


def find_near_duplicates(
    embeddings: np.ndarray, threshold: float, *, num_cells: int | None = None, nprobe: int = 8,
    batch_size: int = 4096, seed: int = 0, show_progress_bar: bool = False,
) -> np.ndarray:
    """Greedy near-duplicate removal in input order: returns, per row, the index of the earlier kept row it
    duplicates (similarity ``> threshold``, dot product), or -1 if it is kept.

    Rows go through in batches of ``batch_size``. Each batch is searched (faiss range search) against an index that
    holds only the rows kept so far, then deduplicated within itself exactly, and its kept rows are added. So memory
    is O(N x dim) whatever the duplicates (a caption repeated 10,000 times costs one index entry, not 10^8 pairs), and
    no N x N matrix is ever formed. The index is exact (``IndexFlatIP``) below 20,000 rows or with ``num_cells=1``;
    otherwise IVF with ``num_cells`` cells (default 4 x sqrt(N), trained on 20 rows per cell), of which each row
    searches its ``nprobe`` nearest: a duplicate whose original lies in none of them is missed (raise ``nprobe`` to
    trade speed for recall).
    """
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    n = len(embeddings)
    if num_cells is None:
        num_cells = 1 if n < 20_000 else int(4 * math.sqrt(n))
    index = _build_index(embeddings, num_cells, nprobe, seed)
    duplicate_of = np.full(n, -1, dtype=np.int64)
    kept = np.empty(0, dtype=np.int64)  # the row of each index label, in the order they were added
    for start in tqdm(range(0, n, batch_size), desc="caption dedup", unit="batch", disable=not show_progress_bar):
        rows = np.arange(start, min(start + batch_size, n))
        hits = _earliest_hits(index, embeddings[rows], threshold)
        duplicate_of[rows[hits >= 0]] = kept[hits[hits >= 0]]
        rest = rows[hits < 0]
        within = _greedy_within(embeddings[rest], threshold)
        duplicate_of[rest[within >= 0]] = rest[within[within >= 0]]
        new = rest[within < 0]
        index.add(embeddings[new])
        kept = np.concatenate([kept, new])
    return duplicate_of
