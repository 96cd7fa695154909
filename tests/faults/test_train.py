"""`train` killed in the middle of writing a checkpoint, and after the final weights but before its card; the
rerun from the latest complete checkpoint ends with the uninterrupted run's weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hf_medvlm.cli import main as cli_main
from tests.faults.helpers import assert_no_temporaries, fault, kill_at

pytestmark = [pytest.mark.faults, pytest.mark.integration]

STAGE2 = str(Path(__file__).resolve().parents[2] / "recipes" / "tiny" / "sft" / "stage2.yaml")


def _argv(tiny_checkpoint, tiny_data_dir, out, *extra):
    return ["train", "--config", STAGE2, "--model_name_or_path", str(tiny_checkpoint), "--dataset_name",
            str(tiny_data_dir), "--max_steps", "6", "--save_steps", "2", "--learning_rate", "1e-3",
            "--output_dir", str(out), *extra]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from hf_medvlm import LlavaMedForConditionalGeneration

    return dict(LlavaMedForConditionalGeneration.from_pretrained(folder).state_dict())


@pytest.fixture(scope="module")
def whole(tmp_path_factory, tiny_checkpoint, tiny_data_dir):
    out = tmp_path_factory.mktemp("train_faults") / "whole"
    assert cli_main(_argv(tiny_checkpoint, tiny_data_dir, out)) == 0
    return out


@pytest.mark.parametrize("point,resume_from", [("mid_checkpoint", "checkpoint-2"),
                                               ("before_card", "checkpoint-6")])
def test_train_killed_then_resumed(whole, tiny_checkpoint, tiny_data_dir, tmp_path, point, resume_from):
    out = tmp_path / "out"
    spec = {
        # checkpoint-4's weights written, its optimizer state not yet
        "mid_checkpoint": fault("transformers.trainer:Trainer._save_optimizer_and_scheduler", tmp_path, call=2),
        # final weights, processor and resolved config written, the card not yet
        "before_card": fault("hf_medvlm.training.outputs:write_model_card", tmp_path),
    }[point]
    kill_at(_argv(tiny_checkpoint, tiny_data_dir, out), spec)
    assert not (out / "README.md").exists()  # (a) the card marks a finished run

    assert cli_main(_argv(tiny_checkpoint, tiny_data_dir, out, "--resume_from_checkpoint",
                          str(out / resume_from))) == 0
    assert "hf-medvlm train" in (out / "README.md").read_text()
    expected, got = _weights(whole), _weights(out)  # (b)
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], atol=1e-6, rtol=1e-5)
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
    assert_no_temporaries(out)  # (c) no checkpoint still marked incomplete
