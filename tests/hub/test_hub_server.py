"""The loopback Hub answers the real huggingface_hub client the way the Hub does."""

from __future__ import annotations

import pytest
import httpx2
from huggingface_hub import HfApi, HfFileSystem, hf_hub_download
from huggingface_hub.errors import RemoteEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

from hf_medvlm.testing.hub_server import start_hub_server


def test_answers_as_soon_as_started_and_refuses_connections_once_stopped(tmp_path):
    server = start_hub_server(tmp_path, port=0)
    try:
        # no polling: the first request right after start_hub_server() returns is answered
        assert httpx2.get(f"{server.url}/api/models/a/b").status_code == 404
        assert server.requests == [("GET", "/api/models/a/b", 404)]
    finally:
        server.stop()
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(f"{server.url}/api/models/a/b")


def test_repo_lifecycle_upload_download_and_listing(hub_server, repo_name, tmp_path):
    api, repo = HfApi(), repo_name("lifecycle")
    url = api.create_repo(repo)
    assert api.create_repo(repo, exist_ok=True) == url  # 409 carries the url
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "sub" / "b.json").write_text("{}")
    (tmp_path / "w.bin").write_bytes(bytes(range(256)) * 8)
    first = api.upload_folder(folder_path=tmp_path, repo_id=repo)
    assert sorted(api.list_repo_files(repo)) == [".gitattributes", "a.txt", "sub/b.json", "w.bin"]
    top = {e.path: e for e in api.list_repo_tree(repo)}
    assert set(top) == {".gitattributes", "a.txt", "sub", "w.bin"} and top["w.bin"].lfs is not None
    info = api.get_paths_info(repo, ["a.txt", "sub", "missing"])
    assert [i.path for i in info] == ["a.txt", "sub"]
    assert api.model_info(repo).sha == first.oid
    assert open(hf_hub_download(repo, "sub/b.json")).read() == "{}"
    with HfFileSystem().open(f"{repo}/w.bin", "rb") as handle:  # ranged GET -> 206
        handle.seek(300)
        assert handle.read(4) == bytes([44, 45, 46, 47])
    assert any(method == "GET" and status == 206 for method, _, status in hub_server.requests)


def test_branches_tags_prs_and_commits(hub_server, repo_name):
    api, repo = HfApi(), repo_name("refs")
    api.create_repo(repo)
    api.upload_file(path_or_fileobj=b"main", path_in_repo="f.txt", repo_id=repo)
    api.create_branch(repo, branch="dev")
    with pytest.raises(Exception, match="409"):
        api.create_branch(repo, branch="dev")
    api.upload_file(path_or_fileobj=b"dev", path_in_repo="f.txt", repo_id=repo, revision="dev")
    api.create_tag(repo, tag="v1")
    pr = api.upload_file(path_or_fileobj=b"pr", path_in_repo="f.txt", repo_id=repo, create_pr=True)
    assert pr.pr_url.endswith("/discussions/1")
    read = lambda rev: open(hf_hub_download(repo, "f.txt", revision=rev)).read()  # noqa: E731
    assert (read("main"), read("dev"), read("v1"), read("refs/pr/1")) == ("main", "dev", "main", "pr")
    refs = api.list_repo_refs(repo, include_pull_requests=True)
    assert {b.name for b in refs.branches} == {"main", "dev"} and [t.name for t in refs.tags] == ["v1"]
    assert len(refs.pull_requests) == 1 and refs.converts == []
    assert [c.title for c in api.list_repo_commits(repo)][:1] == ["Upload f.txt with huggingface_hub"]
    api.delete_branch(repo, branch="dev")
    api.delete_tag(repo, tag="v1")
    assert {b.name for b in api.list_repo_refs(repo).branches} == {"main"}


def test_errors_map_to_client_exceptions(hub_server, repo_name):
    api, repo = HfApi(), repo_name("errors")
    api.create_repo(repo)
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(repo, "nope.txt")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info(repo_name("missing"))
    with pytest.raises(RevisionNotFoundError):
        api.model_info(repo, revision="no-such-branch")
    with pytest.raises(ValueError, match="Invalid metadata"):
        api.upload_file(path_or_fileobj=b"---\n- a list\n---\n", path_in_repo="README.md", repo_id=repo)
    api.delete_repo(repo)
    assert not api.repo_exists(repo)


def test_writes_need_a_token_and_lfs_urls_a_signature(hub_server):
    assert httpx2.post(f"{hub_server.url}/api/repos/create", json={"name": "x"}).status_code == 401
    assert httpx2.get(f"{hub_server.url}/api/whoami-v2").status_code == 401
    assert httpx2.put(f"{hub_server.url}/lfs-upload/{'0' * 64}?size=1&sig=bad", content=b"x").status_code == 403


def test_stale_parent_commit_is_rejected(hub_server, repo_name):
    api, repo = HfApi(), repo_name("parent")
    api.create_repo(repo)
    base = api.model_info(repo).sha
    api.upload_file(path_or_fileobj=b"1", path_in_repo="x", repo_id=repo)
    with pytest.raises(Exception, match="412"):
        api.upload_file(path_or_fileobj=b"2", path_in_repo="x", repo_id=repo, parent_commit=base)
