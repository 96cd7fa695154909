"""Model publishing: LFS weights, remote code loadable without hf_medvlm, revisions, no empty commits, errors."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from huggingface_hub import HfApi, constants

from hf_medvlm.cli import main as cli_main
from hf_medvlm.hub import HubPushError, MissingTokenError, push_model, render_model_card

from ..conftest import make_rgb_image

LOGITS_SCRIPT = textwrap.dedent(
    """
    import sys
    if sys.argv[4] == "block":  # prove the weights load without the package: make hf_medvlm unimportable
        class Blocker:
            def find_spec(self, name, path=None, target=None):
                if name == "hf_medvlm" or name.startswith("hf_medvlm."):
                    raise ImportError("hf_medvlm is blocked in this process")
        sys.meta_path.insert(0, Blocker())
    else:
        import hf_medvlm  # noqa: F401  (registers the Auto classes)
    import numpy as np, torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor
    repo, out, revision = sys.argv[1], sys.argv[2], sys.argv[3]
    remote = sys.argv[4] == "block"
    processor = AutoProcessor.from_pretrained(repo, revision=revision, trust_remote_code=remote)
    model = AutoModelForImageTextToText.from_pretrained(repo, revision=revision, trust_remote_code=remote).eval()
    assert ("hf_medvlm" in type(model).__module__) != remote, type(model).__module__
    image = Image.fromarray(np.random.RandomState(0).randint(0, 255, (40, 48, 3), dtype=np.uint8))
    inputs = processor(images=[image], text="<image>\\nWhat is shown?", return_tensors="pt")
    with torch.no_grad():
        torch.save(model(**inputs).logits, out)
    """
)


def _logits_in_fresh_process(tmp_path, repo, revision="main", block_package=False):
    script = tmp_path / "load_logits.py"
    script.write_text(LOGITS_SCRIPT)
    out = tmp_path / f"logits_{revision}_{block_package}.pt"
    env = dict(os.environ)
    if block_package:  # no checkout on the path either: only the repo's remote code can provide the classes
        env.pop("PYTHONPATH", None)
    mode = "block" if block_package else "pkg"
    result = subprocess.run([sys.executable, str(script), repo, str(out), revision, mode],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return torch.load(out)


def _local_logits(folder):
    from hf_medvlm import LlavaMedForConditionalGeneration, LlavaMedProcessor

    processor = LlavaMedProcessor.from_pretrained(folder)
    model = LlavaMedForConditionalGeneration.from_pretrained(folder).eval()
    image = make_rgb_image(48, 40, seed=0)
    inputs = processor(images=[image], text="<image>\nWhat is shown?", return_tensors="pt")
    with torch.no_grad():
        return model(**inputs).logits


@pytest.mark.integration
def test_push_then_load_with_and_without_the_package(hub_server, repo_name, big_tiny_model_dir, tmp_path):
    repo = repo_name("model")
    push_model(big_tiny_model_dir, repo)

    files = set(HfApi().list_repo_files(repo))
    assert {"config.json", "model.safetensors", "processor_config.json", "chat_template.jinja",
            "generation_config.json", "tokenizer.json", "configuration_llava_med.py", "modeling_llava_med.py",
            "processing_llava_med.py", "README.md"} <= files
    # The >10 MB weight file went through the LFS batch/upload path.
    weights = (big_tiny_model_dir / "model.safetensors").read_bytes()
    assert len(weights) > 10 * 1024 * 1024
    assert hashlib.sha256(weights).hexdigest() in hub_server.lfs_uploads

    expected = _local_logits(big_tiny_model_dir)
    with_package = _logits_in_fresh_process(tmp_path, repo)
    remote_code = _logits_in_fresh_process(tmp_path, repo, block_package=True)
    assert torch.equal(with_package, expected)
    assert torch.equal(remote_code, expected)


def test_repush_makes_no_commit_and_revision_branch_loads(hub_server, repo_name, tiny_llava_med, tmp_path):
    from hf_medvlm.testing import build_tiny_llava_med

    model, processor = tiny_llava_med
    folder = _save(tiny_llava_med, tmp_path / "v0")
    repo = repo_name("revisions")
    push_model(folder, repo)
    commits = hub_server.commit_count(repo)
    again = push_model(folder, repo)
    assert hub_server.commit_count(repo) == commits
    assert again.oid == HfApi().model_info(repo).sha

    other, _ = build_tiny_llava_med(seed=1)
    other.save_pretrained(folder / ".." / "v1")
    processor.save_pretrained(folder / ".." / "v1")
    push_model(folder / ".." / "v1", repo, revision="v1")
    from hf_medvlm import LlavaMedForConditionalGeneration

    loaded = LlavaMedForConditionalGeneration.from_pretrained(repo, revision="v1")
    main = LlavaMedForConditionalGeneration.from_pretrained(repo)
    key = "lm_head.weight"
    assert torch.equal(loaded.state_dict()[key], other.state_dict()[key])
    assert torch.equal(main.state_dict()[key], model.state_dict()[key])


def test_stale_shards_are_deleted_when_resharded(hub_server, repo_name, tiny_llava_med, tmp_path):
    model, processor = tiny_llava_med
    repo = repo_name("reshard")
    model.save_pretrained(tmp_path / "sharded", max_shard_size="3MB")
    processor.save_pretrained(tmp_path / "sharded")
    push_model(tmp_path / "sharded", repo)
    assert any(f.startswith("model-0000") for f in HfApi().list_repo_files(repo))
    from hf_medvlm import LlavaMedForConditionalGeneration

    sharded = LlavaMedForConditionalGeneration.from_pretrained(repo)  # index.json + shards resolved from the Hub
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in sharded.state_dict().items())
    model.save_pretrained(tmp_path / "single")
    processor.save_pretrained(tmp_path / "single")
    push_model(tmp_path / "single", repo)
    weights = sorted(f for f in HfApi().list_repo_files(repo) if "safetensors" in f)
    assert weights == ["model.safetensors"]


def test_missing_token_is_one_clear_sentence(hub_server, monkeypatch, big_tiny_model_dir, repo_name):
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(MissingTokenError, match="set the HF_TOKEN environment variable"):
        push_model(big_tiny_model_dir, repo_name("notoken"))


def _save(tiny_llava_med, folder):
    model, processor = tiny_llava_med
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _sent(hub_server, before, path_part):
    return [status for _, path, status in hub_server.requests[before:] if path_part in path]


def test_transient_errors_are_retried_by_huggingface_hub(hub_server, monkeypatch, tiny_llava_med, tmp_path,
                                                          repo_name, capsys):
    folder = _save(tiny_llava_med, tmp_path / "model")
    repo = repo_name("retry")
    before = len(hub_server.requests)
    hub_server.fail_next(1, status=503, path_contains=f"/api/models/{repo}/preupload/")
    push_model(folder, repo)
    assert "model.safetensors" in HfApi().list_repo_files(repo)
    assert _sent(hub_server, before, f"/api/models/{repo}/preupload/")[:2] == [503, 200]
    # huggingface_hub does not retry the commit request itself (a lost reply would duplicate the commit): the push
    # fails in one sentence, and pushing again finishes it with exactly one new commit.
    commits = hub_server.commit_count(repo)
    (folder / "extra.txt").write_text("new file")
    hub_server.fail_next(1, status=503, path_contains=f"/api/models/{repo}/commit/")
    with pytest.raises(HubPushError, match="answered HTTP 503"):
        push_model(folder, repo)
    push_model(folder, repo)
    assert hub_server.commit_count(repo) == commits + 1

    # A server that keeps failing: huggingface_hub's back-off gives up, then one sentence and exit code 1.
    monkeypatch.setattr("huggingface_hub.utils._http.time.sleep", lambda seconds: None)
    other = repo_name("retry")
    hub_server.fail_next(100, status=500, path_contains=f"/api/models/{other}/preupload/")
    before = len(hub_server.requests)
    assert cli_main(["push", "--folder", str(folder), "--repo_id", other]) == 1
    hub_server.clear_faults()
    err = capsys.readouterr().err.strip()
    assert "answered HTTP 500" in err and "push again" in err and len(err.splitlines()) == 1
    assert len(_sent(hub_server, before, f"/api/models/{other}/preupload/")) > 1


@pytest.mark.parametrize("case", ["offline", 401, 403, 404])
def test_errors_that_cannot_pass_on_retry_end_at_once(case, hub_server, monkeypatch, tiny_llava_med, tmp_path,
                                                      repo_name, capsys):
    folder = _save(tiny_llava_med, tmp_path / "model")
    repo = repo_name(f"refused-{case}")
    before = len(hub_server.requests)
    if case == "offline":
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # what HF_HUB_OFFLINE=1 sets at import
    elif case == 401:
        monkeypatch.setattr(hub_server.hub, "token", "the-only-accepted-token")
    else:
        hub_server.fail_next(1, status=case, path_contains=f"/api/models/{repo}/preupload/")
    assert cli_main(["push", "--folder", str(folder), "--repo_id", repo]) == 2
    hub_server.clear_faults()
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and f"Cannot push to {repo}" in err
    expected = {"offline": "offline mode is on", 401: "HF_TOKEN", 403: "HTTP 403", 404: "HTTP 404"}[case]
    assert expected in err
    statuses = [status for _, _, status in hub_server.requests[before:]]
    if case == "offline":
        assert statuses == []  # not even one request
    else:
        assert statuses.count(case) == 1 and 500 not in statuses  # refused once, never retried


def test_unreachable_hub_gives_a_clear_error(hub_server, monkeypatch, tiny_llava_med, tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setattr(constants, "ENDPOINT", dead)
    with pytest.raises(HubPushError, match="check your network"):
        push_model(_save(tiny_llava_med, tmp_path), "hf-medvlm-tester/unreachable")


def test_peft_adapter_folder_is_pushed(hub_server, repo_name, tiny_llava_med, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model

    base, _ = tiny_llava_med
    adapted = get_peft_model(copy.deepcopy(base), LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    adapted.save_pretrained(tmp_path / "adapter")
    repo = repo_name("adapter")
    push_model(tmp_path / "adapter", repo)
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= set(HfApi().list_repo_files(repo))
    loaded = PeftModel.from_pretrained(copy.deepcopy(base), repo)
    key = next(k for k in adapted.state_dict() if "lora_A" in k)
    assert torch.equal(loaded.state_dict()[key], adapted.state_dict()[key])


def test_model_card_contents(tmp_path):
    recipe = tmp_path / "sft.yaml"
    recipe.write_text("learning_rate: 2.0e-5\nnum_train_epochs: 3\n")
    card = render_model_card(
        repo_id="me/llava-med-tiny", base_models=["microsoft/llava-med-v1.5-mistral-7b"],
        datasets=[{"id": "me/pmc-instruct", "license": "cc-by-4.0"}],
        licenses={"microsoft/llava-med-v1.5-mistral-7b": "llava-med research license"},
        recipe_path=recipe, resolved_config={"learning_rate": 2e-5, "seed": 42},
        eval_results=[dict(task_type="visual-question-answering", dataset_type="flaviagiammarino/vqa-rad",
                           dataset_name="VQA-RAD", dataset_split="test", metric_type="accuracy",
                           metric_value=61.5, metric_name="closed accuracy (llava_med)")],
    )
    from huggingface_hub import ModelCard

    parsed = ModelCard(card)
    result = parsed.data.eval_results[0]
    assert (result.metric_name, result.metric_value, result.dataset_name) == (
        "closed accuracy (llava_med)", 61.5, "VQA-RAD")
    assert parsed.data.base_model == ["microsoft/llava-med-v1.5-mistral-7b"]
    assert "not for clinical decisions" in card.replace("\n", " ") or "must not be used for clinical decisions" in card
    assert "llava-med research license" in card and "cc-by-4.0" in card
    assert "num_train_epochs: 3" in card and "seed: 42" in card
    import transformers

    assert f"| transformers | {transformers.__version__} |" in card and "| trl |" in card
    assert "git revision" in card


def test_cli_push_model(hub_server, big_tiny_model_dir, repo_name, capsys):
    from hf_medvlm.cli import main

    repo = repo_name("cli")
    assert main(["push", "--folder", str(big_tiny_model_dir), "--repo_id", repo, "--revision", "exp"]) == 0
    assert "model.safetensors" in HfApi().list_repo_files(repo, revision="exp")
    assert json.loads(open(HfApi().hf_hub_download(repo, "config.json", revision="exp")).read())["auto_map"]


@pytest.mark.integration
def test_training_with_push_to_hub_publishes_card_with_recipe_and_results(hub_server, repo_name, tiny_llava_med,
                                                                          tmp_path, repo_root):
    from tests.training.conftest import write_tiny_dataset

    model, processor = tiny_llava_med
    model.save_pretrained(tmp_path / "tiny")
    processor.save_pretrained(tmp_path / "tiny")
    write_tiny_dataset(tmp_path / "data")
    repo = repo_name("trained")
    recipe = repo_root / "recipes" / "tiny" / "sft" / "stage2.yaml"
    from hf_medvlm.commands.train import main

    assert main(["--config", str(recipe), "--model_name_or_path", str(tmp_path / "tiny"), "--dataset_name",
                 str(tmp_path / "data"), "--output_dir", str(tmp_path / "out"), "--max_steps", "2",
                 "--save_strategy", "no", "--push_to_hub", "true", "--hub_model_id", repo]) == 0

    api = HfApi()
    files = set(api.list_repo_files(repo))
    assert {"model.safetensors", "config.json", "modeling_llava_med.py", "chat_template.jinja"} <= files
    card = open(api.hf_hub_download(repo, "README.md")).read()
    assert "recipes/tiny/sft/stage2.yaml" in card and "per_device_train_batch_size: 2" in card  # recipe text
    assert "| train_loss |" in card and "Resolved configuration" in card
    assert "must not be used for clinical decisions" in card
