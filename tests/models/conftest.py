"""Fixtures for the original-checkpoint loading/conversion tests: tiny checkpoints in both original layouts.

Nothing HF is imported at module level: pytest loads this file before the root conftest's `pytest_configure` sets the
hermetic environment, and huggingface_hub reads `HF_ENDPOINT` once at import.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """Tiny v1.5 and v1.0 checkpoints in the original layouts, plus the separate CLIP directory."""
    from .original_builders import build_original

    root = tmp_path_factory.mktemp("originals")
    return {
        "root": root,
        "clip": root / "clip",
        "v1.5": build_original(root / "v1.5", "v1.5", root / "clip"),
        "v1.0": build_original(root / "v1.0", "v1.0", root / "clip"),
    }
