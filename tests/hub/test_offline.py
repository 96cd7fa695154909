"""issue 17: with HF_HUB_OFFLINE=1 whatever needs the real Hub is refused at once, before any work, in one sentence;
a loopback Hub is not the network (tests/hub/test_push_model.py pushes to one offline)."""

from __future__ import annotations

import pytest
from huggingface_hub import constants

from hf_medvlm.cli import main as cli_main


@pytest.fixture
def offline_real_hub(monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # what HF_HUB_OFFLINE=1 sets at import
    monkeypatch.setattr(constants, "ENDPOINT", "https://huggingface.co")


@pytest.mark.parametrize("argv", [
    ["demo", "--hub", "endpoint", "--output_dir", "{tmp}/demo"],
    ["train", "--config", "{repo}/recipes/tiny/sft/stage2.yaml", "--push_to_hub", "true", "--hub_model_id", "me/x",
     "--output_dir", "{tmp}/demo"],
    ["prepare", "vqa_rad", "--input_path", "{tmp}/never-read.json", "--output_dir", "{tmp}/demo", "--push_to_hub",
     "--hub_repo_id", "me/x"],
    ["convert", "--input_dir", "{tmp}/never-read", "--output_dir", "{tmp}/demo", "--push_to_hub", "me/x"],
], ids=["demo", "train", "prepare", "convert"])
def test_a_push_to_the_real_hub_is_refused_before_any_work(argv, offline_real_hub, tmp_path, repo_root, capsys):
    argv = [a.format(tmp=tmp_path, repo=repo_root) for a in argv]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "offline mode is on (HF_HUB_OFFLINE=1)" in err
    assert "https://huggingface.co" in err and not (tmp_path / "demo").exists()


def test_require_hub_access_lets_a_loopback_hub_through(monkeypatch):
    from hf_medvlm.hub import HubAccessError, require_hub_access

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:8765")
    require_hub_access("push")
    monkeypatch.setattr(constants, "ENDPOINT", "https://hub.example.org")
    with pytest.raises(HubAccessError, match="Cannot push: offline mode is on"):
        require_hub_access("push")


def _fails_like_from_pretrained_offline(argv):
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        raise LocalEntryNotFoundError("Cannot find the requested files in the disk cache")
    except LocalEntryNotFoundError as err:
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files, and couldn't find them in "
                      "the cached files.\nCheck your internet connection.") from err


@pytest.mark.parametrize("offline", [True, False])
def test_a_name_only_the_hub_has_fails_in_one_sentence_offline(offline, monkeypatch, capsys):
    import hf_medvlm.commands.report as report

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(report, "main", _fails_like_from_pretrained_offline)
    code, err = cli_main(["report"]), capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    if offline:
        assert code == 2 and "offline mode is on (HF_HUB_OFFLINE=1) and this needs the Hub (We couldn't" in err
    else:  # online the same failure is the work failing (a network problem), not a refusal
        assert code == 1 and "failed: OSError" in err
