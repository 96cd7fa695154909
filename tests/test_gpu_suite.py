"""`benchmarks/gpu_suite.py` runs end to end on this machine (the tiny shape on CPU without a GPU), so the prepared GPU
command never rots; and its FLOP count is the one its docstring states."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

SUITE = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_suite.py"


def _load_suite():
    spec = importlib.util.spec_from_file_location("gpu_suite", SUITE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.integration
def test_gpu_suite_runs_and_prints_both_comparisons():
    result = subprocess.run([sys.executable, str(SUITE)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    out = result.stdout
    assert "stage-2 training step" in out and "eval generation" in out
    rows = {m.group(1): float(m.group(2)) for m in re.finditer(r"^(stock|ours)\s+[\d.]+\s+([\d.]+)", out, re.M)}
    assert set(rows) == {"stock", "ours"} and all(v > 0 for v in rows.values())
    assert "stage2/full.yaml: attn sdpa" in out and "optim adamw_torch_fused" in out
    assert re.search(r"^\s+4\s+[\d.]+\s+[\d.]+\s+[\d.]+x .* 4/4$", out, re.M), out  # batched == one at a time
    if "CPU" in out:
        assert "shape tiny" in out


def test_model_flops_count_six_n_for_the_lm_and_two_n_for_the_frozen_tower():
    suite = _load_suite()
    model = suite.build_model("ours", "tiny", __import__("torch").float32, "meta", None)
    tower = sum(p.numel() for p in model.model.vision_tower.parameters())
    projector = sum(p.numel() for p in model.model.multi_modal_projector.parameters())
    lm = sum(p.numel() for p in model.model.language_model.parameters()) + model.lm_head.weight.numel()
    lm -= model.get_input_embeddings().weight.numel()
    patches = (56 // 14) ** 2 + 1
    expected = 6 * (lm * 100 + projector * 2 * (patches - 1)) + 2 * tower * 2 * patches
    assert suite.model_flops(model, tokens=100, images=2) == pytest.approx(expected)
    # The 7B shape is the LLaVA-Med v1.5 one: ~7.2B in the LM (with the 32k head), ~0.3B in the CLIP-L/336 tower.
    big = suite.build_model("ours", "7b", __import__("torch").bfloat16, "meta", None)
    lm_params = sum(p.numel() for p in big.model.language_model.parameters()) + big.lm_head.weight.numel()
    assert 7.1e9 < lm_params < 7.4e9
    assert 2.9e8 < sum(p.numel() for p in big.model.vision_tower.parameters()) < 3.1e8
