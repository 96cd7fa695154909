"""`push` against the loopback Hub, killed with the weights uploaded but not committed, and between the data commit
and the card commit (model and dataset); the rerun ends with the uninterrupted push's repo and sends no blob twice."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from hf_medvlm.cli import main as cli_main
from tests.faults.helpers import assert_no_temporaries, fault, kill_at, tree_bytes

pytestmark = [pytest.mark.faults, pytest.mark.integration]

_names = itertools.count()


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    """A saved tiny LlavaMed whose weights (about 12 MB) take the LFS path."""
    from hf_medvlm.testing import build_tiny_llava_med

    model, processor = build_tiny_llava_med(
        seed=0, text_config=dict(hidden_size=48, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64))
    folder = tmp_path_factory.mktemp("push_faults") / "model"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def dataset_folder(tmp_path_factory):
    from hf_medvlm.commands.prepare import main as prepare_main
    from tests.faults.test_prepare import _argv, _raw

    root = tmp_path_factory.mktemp("push_faults_data")
    assert prepare_main(_argv(_raw(root, 12, "d"), root / "data")) == 0
    return root / "data"


def _repo_files(hub_server, repo_id, repo_type):
    """path -> git oid of every file at the head of main; the card with the repo id taken out (it names the repo)."""
    files = hub_server.hub.tree(repo_type, repo_id, "main", "", True)
    return {entry["path"]: entry["oid"] for entry in files if entry["type"] == "file" and entry["path"] != "README.md"}


def _card(hub_server, repo_id, repo_type):
    from huggingface_hub import hf_hub_download

    path = hf_hub_download(repo_id, "README.md", repo_type=repo_type)
    text = open(path, encoding="utf-8").read()
    return text.replace(repo_id, "<repo>").replace(repo_id.split("/")[-1], "<name>")  # the title is the bare name


def _push(folder, repo_id, repo_type):
    return ["push", "--folder", str(folder), "--repo_id", repo_id, "--repo_type", repo_type]


@pytest.mark.parametrize("repo_type,point", [("model", "blobs_uploaded_not_committed"),
                                             ("model", "committed_before_card"),
                                             ("dataset", "committed_before_card")])
def test_push_killed_then_rerun(hub_server, model_folder, dataset_folder, tmp_path, repo_type, point):
    folder = model_folder if repo_type == "model" else dataset_folder
    local = tree_bytes(folder)
    whole, repo = f"faults/{repo_type}-whole-{next(_names)}", f"faults/{repo_type}-killed-{next(_names)}"
    spec = {"blobs_uploaded_not_committed": fault("huggingface_hub._commit_api:lfs_upload", tmp_path, when="after"),
            "committed_before_card": fault("huggingface_hub.hf_api:HfApi.upload_file", tmp_path)}[point]
    # The uninterrupted push comes last: the loopback Hub keeps one copy of each blob, so a push before the killed one
    # would leave it no blob to upload.
    uploads_before = len(hub_server.lfs_uploads)
    kill_at(_push(folder, repo, repo_type), spec)
    at_kill = _repo_files(hub_server, repo, repo_type)
    if point == "blobs_uploaded_not_committed":
        # (a) a blob, but no commit: the repo holds only what creating it wrote
        assert set(at_kill) <= {".gitattributes"} and len(hub_server.lfs_uploads) > uploads_before
    else:  # (a) no card yet: a dataset's configs are not visible, a model has no card claiming a finished upload
        assert "README.md" not in {e["path"] for e in hub_server.hub.tree(repo_type, repo, "main", "", True)}
    sent_by_killed = Counter(hub_server.lfs_uploads[uploads_before:])

    assert cli_main(_push(folder, repo, repo_type)) == 0
    resent = Counter(hub_server.lfs_uploads[uploads_before:]) - sent_by_killed
    assert not set(resent) & set(sent_by_killed), "a blob the killed push had uploaded was sent again"
    assert cli_main(_push(folder, whole, repo_type)) == 0
    if point == "committed_before_card":  # (a) what was committed before the kill is the data, whole
        assert at_kill == _repo_files(hub_server, whole, repo_type)
    assert _repo_files(hub_server, repo, repo_type) == _repo_files(hub_server, whole, repo_type)  # (b)
    assert _card(hub_server, repo, repo_type) == _card(hub_server, whole, repo_type)
    assert hub_server.commit_count(repo, repo_type) == hub_server.commit_count(whole, repo_type)
    assert tree_bytes(folder) == local  # (c) nothing written into the pushed folder
    assert_no_temporaries(folder)
