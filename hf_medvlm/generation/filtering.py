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


def _assign_cells(embeddings: np.ndarray, num_cells: int, nprobe: int, seed: int) -> np.ndarray:
    """IVF-style coarse quantiser: k-means centroids, then each vector's ``nprobe`` most similar cells (home first)."""
    if num_cells <= 1:
        return np.zeros((len(embeddings), 1), dtype=np.int64)
    from sklearn.cluster import MiniBatchKMeans

    rng = np.random.default_rng(seed)
    sample = embeddings[rng.choice(len(embeddings), size=min(len(embeddings), 50 * num_cells), replace=False)]
    kmeans = MiniBatchKMeans(n_clusters=num_cells, random_state=seed, batch_size=4096, n_init=1).fit(sample)
    centroids = kmeans.cluster_centers_.astype(np.float32)
    nprobe = min(nprobe, num_cells)
    probes = np.empty((len(embeddings), nprobe), dtype=np.int64)
    for start in range(0, len(embeddings), 8192):
        sims = embeddings[start:start + 8192] @ centroids.T
        top = np.argpartition(-sims, nprobe - 1, axis=1)[:, :nprobe]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
        probes[start:start + 8192] = np.take_along_axis(top, order, axis=1)
    return probes


def _best_previous(block, probes, embeddings, kept_by_cell):
    """For each block row: the highest similarity to an already-kept vector in its probed cells, and which one."""
    best = np.full(len(block), -np.inf, dtype=np.float32)
    best_idx = np.full(len(block), -1, dtype=np.int64)
    block_probes = probes[block]
    for cell in np.unique(block_probes):
        kept = kept_by_cell.get(int(cell))
        if not kept:
            continue
        rows = np.nonzero((block_probes == cell).any(axis=1))[0]
        kept_arr = np.asarray(kept)
        sims = embeddings[block[rows]] @ embeddings[kept_arr].T
        arg = sims.argmax(axis=1)
        top = sims[np.arange(len(rows)), arg]
        better = top > best[rows]
        best[rows[better]] = top[better]
        best_idx[rows[better]] = kept_arr[arg[better]]
    return best, best_idx


def find_near_duplicates(
    embeddings: np.ndarray, threshold: float, *, num_cells: int | None = None, nprobe: int = 8,
    block_size: int = 2048, seed: int = 0, progress=None,
) -> np.ndarray:
    """Greedy near-duplicate removal in input order: returns, per row, the index of the earlier kept row it
    duplicates (similarity ``> threshold``, dot product), or -1 if it is kept.

    Scales without an N x N matrix: rows are bucketed by a k-means coarse quantiser (``num_cells``, default
    ~sqrt(N), exact single-cell search below 20,000 rows); each block of rows is compared only with the kept rows of
    its ``nprobe`` nearest cells, plus exactly with the rest of its own block. Memory is O(N x dim + block x cell);
    compute is about N x nprobe x N / num_cells dot products. Approximate: a duplicate whose nearest cells differ
    from its original's home cell can be missed (raise ``nprobe`` to trade speed for recall).
    """
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    n = len(embeddings)
    if num_cells is None:
        num_cells = 1 if n < 20_000 else int(math.sqrt(n))
    probes = _assign_cells(embeddings, num_cells, nprobe, seed)
    duplicate_of = np.full(n, -1, dtype=np.int64)
    kept_by_cell: dict[int, list[int]] = {}
    for start in range(0, n, block_size):
        block = np.arange(start, min(start + block_size, n))
        best, best_idx = _best_previous(block, probes, embeddings, kept_by_cell)
        within = embeddings[block] @ embeddings[block].T
        kept_in_block: list[int] = []
        for i, row in enumerate(block):
            if best[i] > threshold:
                duplicate_of[row] = best_idx[i]
                continue
            hits = [j for j in kept_in_block if within[i, j] > threshold]
            if hits:
                duplicate_of[row] = block[hits[0]]
                continue
            kept_in_block.append(i)
            kept_by_cell.setdefault(int(probes[row, 0]), []).append(int(row))
        if progress is not None:
            progress.update(len(block))
    return duplicate_of
