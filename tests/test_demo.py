"""`hf-medvlm demo` end to end at tiny scale: every step runs, the push lands on the loopback Hub, the card is there."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.integration
def test_demo_runs_every_step_with_lora_and_reloads_from_the_hub(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "hf_medvlm", "demo", "--output_dir", str(out), "--stage1_steps", "2",
         "--stage2_steps", "2", "--stage2", "lora"],
        capture_output=True, text=True, timeout=900,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),  # issue 17: as on clusters; the loopback Hub is not the network
    )
    assert result.returncode == 0, result.stderr[-4000:]
    summary = result.stdout[result.stdout.index("hf-medvlm demo summary"):]
    for step in ("build demo data", "stage 1 (projector)", "stage 2 (lora)", "evaluate (llava_med + strict)",
                 "model + dataset cards", "push to Hub", "from_pretrained + answer", "total"):
        assert step in summary, summary
    assert "2 steps, loss" in summary and "llava_med: closed acc" in summary and "strict: closed acc" in summary
    # LoRA was merged into a full checkpoint, and that checkpoint carries a card with the protocols named.
    card = (out / "stage2-merged" / "README.md").read_text()
    assert "not be used for clinical decisions" in card
    assert "closed accuracy (%, llava_med)" in card and "closed accuracy (%, strict)" in card
    results = json.loads((out / "eval" / "results.json").read_text())
    assert results["num_questions"] == 81 and set(results["scores"]) == {"llava_med", "strict"}
    # The loopback Hub kept what was pushed: a model repo and a dataset repo.
    hub_state = next(out.glob("hub_*"))
    assert any(hub_state.rglob("*")), "the loopback Hub stored nothing"
