"""Synthetic preference data where a planted feature decides quality, and the tiny selector."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image


def make_candidate(rng: random.Random, good: bool) -> dict:
    """A candidate whose quality is planted in the answer text (`good` vs `bad` among random words); images are noise."""
    words = [f"w{rng.randrange(48)}" for _ in range(rng.randint(4, 8))]
    words.insert(rng.randrange(len(words) + 1), "good" if good else "bad")
    pixels = np.random.RandomState(rng.randrange(2**31)).randint(0, 120, (32, 32, 3), dtype=np.uint8)
    return {
        "image": Image.fromarray(pixels),
        "caption": "caption " + " ".join(f"w{rng.randrange(48)}" for _ in range(3)),
        "question": " ".join(f"w{rng.randrange(48)}" for _ in range(4)),
        "answer": " ".join(words),
    }


def make_pairs(n: int, source: str, seed: int, informative: bool = True) -> list[dict]:
    """`n` pairs; if `informative`, the good candidate is the preferred one, otherwise the label is a coin flip."""
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        good, bad = make_candidate(rng, True), make_candidate(rng, False)
        label = rng.randrange(2)
        a, b = (good, bad) if label == 0 else (bad, good)
        if not informative:
            label = rng.randrange(2)
        pair = {"id": f"{source}-{seed}-{i}", "source": source, "label": label}
        for name in ("image", "caption", "question", "answer"):
            pair[f"{name}_a"], pair[f"{name}_b"] = a[name], b[name]
        pair["rating_a"] = pair["rating_b"] = None
        pairs.append(pair)
    return pairs


def rated_row(rng: random.Random, rating, good: bool | None = None, image=True) -> dict:
    """A training-schema row with a model rating; quality follows the rating unless `good` is given."""
    candidate = make_candidate(rng, good if good is not None else (isinstance(rating, (int, float)) and rating >= 5))
    return {
        "id": f"row-{rng.randrange(10**9)}",
        "images": [candidate["image"]] if image else [],
        "messages": [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": candidate["question"]}]},
            {"role": "assistant", "content": [{"type": "text", "text": candidate["answer"]}]},
        ],
        "caption": candidate["caption"],
        "rating": rating,
    }


@pytest.fixture
def tiny_selector():
    from hf_medvlm.testing.tiny_selector import build_tiny_selector

    return build_tiny_selector(seed=0)
