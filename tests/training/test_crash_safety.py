"""`hf-medvlm train` after a kill mid-checkpoint, and with sources that cannot be read (issue 16 items 5, 8, 9): no
TRL draft card, a half-written checkpoint removed by the rerun, which resumes to the uninterrupted weights; a dataset
or model that is neither local nor on the Hub is one sentence and exit 2 at once, online (404) and offline."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hf_medvlm.cli import main as cli_main
from hf_medvlm.testing.kill import glob_matches, run_and_kill
from tests.training.conftest import run_cli

pytestmark = pytest.mark.integration

STAGE2 = str(Path(__file__).resolve().parents[2] / "recipes" / "tiny" / "sft" / "stage2.yaml")


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from hf_medvlm import LlavaMedForConditionalGeneration

    return dict(LlavaMedForConditionalGeneration.from_pretrained(folder).state_dict())


def test_killed_mid_checkpoint_no_trl_card_and_the_rerun_resumes(tiny_checkpoint, tiny_data_dir, tmp_path):
    common = ["--config", STAGE2, "--model_name_or_path", str(tiny_checkpoint), "--dataset_name", str(tiny_data_dir),
              "--max_steps", "6", "--save_steps", "2", "--learning_rate", "1e-3"]
    full = tmp_path / "full"
    run_cli("train", *common, "--output_dir", str(full))
    killed = tmp_path / "killed"
    run = run_and_kill(["train", *common, "--output_dir", str(killed)],
                       glob_matches(killed, "checkpoint-4/.checkpoint.incomplete-*"))
    assert run.killed, run.output
    assert not (killed / "README.md").exists()  # was TRL's "fine-tuned version of [None]" draft, from checkpoint-2 on
    assert (killed / "checkpoint-2" / "trainer_state.json").is_file()

    run_cli("train", *common, "--output_dir", str(killed), "--resume_from_checkpoint", str(killed / "checkpoint-2"))
    assert not list(killed.glob("checkpoint-*/.checkpoint.incomplete-*"))
    assert (killed / "checkpoint-4" / "trainer_state.json").is_file()
    card = (killed / "README.md").read_text()
    assert "hf-medvlm train" in card and "fine-tuned version of [None]" not in card
    expected, got = _weights(full), _weights(killed)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], atol=1e-6, rtol=1e-5)


def test_a_checkpoint_cut_off_by_a_kill_is_removed_before_training(tmp_path):
    from hf_medvlm.training.outputs import clean_output_dir

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for step, writer in ((2, None), (4, os.getpid()), (6, dead.pid)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"partial")
        if writer is not None:  # the marker `MedVLMSFTTrainer._save_checkpoint` keeps while it writes
            (folder / f".checkpoint.incomplete-{socket.gethostname()}-{writer}-0123abcd").touch()
    (tmp_path / "README.md").write_text("a card of an earlier run")
    with pytest.raises(FileNotFoundError, match="checkpoint-6: no such checkpoint folder .* latest complete "
                                                 "checkpoint there is .*checkpoint-4"):
        clean_output_dir(tmp_path, resume_from_checkpoint=str(tmp_path / "checkpoint-6"))
    # checkpoint-4's writer (this process) is alive: not provably stale, kept; checkpoint-6's is dead: removed.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2", "checkpoint-4"]


def _train_in_process(tiny_checkpoint, tmp_path, **names) -> int:
    argv = ["train", "--config", STAGE2, "--model_name_or_path", str(tiny_checkpoint), "--output_dir",
            str(tmp_path / "out")]
    for key, value in names.items():
        argv += [f"--{key}", value]
    return cli_main(argv)


def test_dataset_or_model_not_on_the_hub_is_exit_2_after_one_request(tiny_checkpoint, tiny_data_dir, tmp_path,
                                                                      hub_server, capsys):
    assert _train_in_process(tiny_checkpoint, tmp_path, dataset_name="nobody/no-such-dataset") == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "hf-medvlm train: error: dataset_name 'nobody/no-such-dataset' is neither a local path nor a dataset repo on "
        f"{hub_server.url} (or it is private and HF_TOKEN has no access to it)")
    assert sum("no-such-dataset" in path for _, path, _ in hub_server.requests) == 1  # no retries
    assert _train_in_process(tiny_checkpoint, tmp_path, dataset_name=str(tiny_data_dir),
                             model_name_or_path="nobody/no-such-model") == 2
    assert "model_name_or_path 'nobody/no-such-model' is neither a local path nor a model repo" in (
        capsys.readouterr().err)
    assert _train_in_process(tiny_checkpoint, tmp_path, dataset_name=str(tmp_path / "typo")) == 2
    assert "no such local file or folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_offline_without_a_cached_copy_is_exit_2_without_a_request(tiny_checkpoint, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "hf_medvlm", "train", "--config", STAGE2, "--model_name_or_path",
                             str(tiny_checkpoint), "--dataset_name", "nobody/no-such-dataset", "--output_dir",
                             str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == (
        "hf-medvlm train: error: dataset_name 'nobody/no-such-dataset' is not a local folder and has no cached copy, "
        "and HF_HUB_OFFLINE=1 keeps it from being downloaded; give a local path or unset HF_HUB_OFFLINE")


def test_resume_from_the_final_checkpoint_trains_no_step_past_max_steps(tiny_checkpoint, tiny_data_dir, tmp_path):
    """max_steps 3 ends mid-epoch (4 steps per epoch): the resume must not take a 4th step (transformers' Trainer
    checks max_steps only after a step), so the result is checkpoint-3's weights under a constant learning rate."""
    out = tmp_path / "out"
    common = ["--config", STAGE2, "--model_name_or_path", str(tiny_checkpoint), "--dataset_name", str(tiny_data_dir),
              "--max_steps", "3", "--save_steps", "3", "--learning_rate", "1e-2", "--lr_scheduler_type", "constant",
              "--warmup_steps", "0", "--per_device_train_batch_size", "2", "--output_dir", str(out)]
    run_cli("train", *common)
    final = _weights(out / "checkpoint-3")
    run_cli("train", *common, "--resume_from_checkpoint", str(out / "checkpoint-3"))
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-3"]
    resumed = _weights(out)
    for key in final:
        torch.testing.assert_close(resumed[key], final[key], atol=0, rtol=0)
