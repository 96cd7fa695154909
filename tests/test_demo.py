"""`hf-medvlm demo` end to end at tiny scale: every step runs, the push lands on the loopback Hub, the card is there."""

from __future__ import annotations

import json
import re
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
    )
    assert result.returncode == 0, result.stderr[-4000:]
    summary = result.stdout[result.stdout.index("hf-medvlm demo summary"):]
    for step in ("build demo data", "stage 1 (projector)", "stage 2 (lora)", "evaluate vs baselines",
                 "model + dataset cards", "push to Hub", "from_pretrained + answer", "total"):
        assert step in summary, summary
    assert re.search(r"2 steps, [\d.]+ s/step, loss", summary), summary
    assert "llava_med: closed acc" in summary and "strict: closed acc" in summary
    # Each score beside its baselines on the same held-out questions, and a plain verdict on image grounding.
    header = re.search(r"^metric \(%\)\s+majority\s+untrained\s+trained\s+trained, swapped images$", summary, re.M)
    assert header, summary
    closed = re.search(r"^closed accuracy \(strict\)\s+([\d.]+)\s", summary, re.M)
    assert closed and float(closed.group(1)) == 50.0  # 14 "yes" and 14 "no": the majority answer gets half
    assert "What a tiny random model can learn here" in summary and "What it cannot" in summary
    assert re.search(r"Image grounding: \d+ of 42 answers change", summary)
    for run in ("eval", "eval_untrained", "eval_mismatched_images"):
        assert json.loads((out / run / "results.json").read_text())["num_questions"] == 42
    # LoRA was merged into a full checkpoint, and that checkpoint carries a card with the protocols named.
    card = (out / "stage2-merged" / "README.md").read_text()
    assert "not be used for clinical decisions" in card
    assert "closed accuracy (%, llava_med)" in card and "closed accuracy (%, strict)" in card
    results = json.loads((out / "eval" / "results.json").read_text())
    assert results["num_questions"] == 42 and set(results["scores"]) == {"llava_med", "strict"}
    # The loopback Hub kept what was pushed: a model repo and a dataset repo.
    hub_state = next(out.glob("hub_*"))
    assert any(hub_state.rglob("*")), "the loopback Hub stored nothing"
