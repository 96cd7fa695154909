"""Fixtures for the Hub tests: a saved tiny LlavaMed folder whose weights exceed 10 MB (so they take the LFS path)."""

from __future__ import annotations

import itertools

import pytest

_counter = itertools.count()


@pytest.fixture
def repo_name():
    """A fresh `namespace/name` per call: all tests share one session-wide server."""

    def make(prefix: str = "repo") -> str:
        return f"hf-medvlm-tester/{prefix}-{next(_counter)}"

    return make


@pytest.fixture(scope="session")
def big_tiny_model_dir(tmp_path_factory):
    """A saved tiny LlavaMed (hidden size 48 -> ~12 MB model.safetensors) with processor, chat template, remote code."""
    from hf_medvlm.testing import build_tiny_llava_med

    model, processor = build_tiny_llava_med(
        seed=0, text_config=dict(hidden_size=48, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64)
    )
    folder = tmp_path_factory.mktemp("tiny_model")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
