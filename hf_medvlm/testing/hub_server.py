"""A small Hugging Face Hub-compatible HTTP server on 127.0.0.1, for tests, benchmarks and the offline demo.

TEST INFRASTRUCTURE, NOT PRODUCT CODE. It speaks just enough of the Hub protocol that the unmodified clients
(huggingface_hub, datasets, transformers) can create repos, upload (regular files and LFS), download, list and branch
against it. Point the clients at it with `HF_ENDPOINT=<server.url>` and `HF_HUB_DISABLE_XET=1`, both set *before*
huggingface_hub is imported (they are read at import time); Xet storage is not implemented. Usage: docs/hub.md.

Design (stdlib and PyYAML): content-addressed blobs (`sha256`) under `root_dir/blobs`, one JSON state file holding
repos, commits (each with its full path index), branches, tags and `refs/pr/N`. Every new repo starts with a commit
that adds `.gitattributes`. Writes need a bearer token (any token, or exactly `token=` if given); reads are open. LFS
upload URLs are HMAC-signed because the client sends them without an Authorization header; the upload itself is checked
against its sha256 and size, so there is no separate verify step. Missing repos, revisions and files answer 404 with
`X-Error-Code` so that the clients raise their usual exceptions.

For tests of error handling: `server.fail_next(n, status=500, method=None, path_contains=None)` makes the next `n`
matching requests fail, and `server.requests` records `(method, path, status)` for every request served.

Known gaps (fine for tests): no private-repo read control, no repo settings, one user, no LFS multipart, no
discussions API, no tree pagination, no `refs/convert/parquet`, repo ids must be `namespace/name`.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from ._loopback import LoopbackHandler, LoopbackServer

__all__ = ["HubServer", "start_hub_server", "USER_NAME"]

USER_NAME = "hf-medvlm-tester"
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
LFS_THRESHOLD = 10 * 1024 * 1024
# Extensions the Hub's default .gitattributes stores with LFS (binary formats, archives, weights, data, media).
LFS_SUFFIXES = tuple(
    ".7z .arrow .bin .bz2 .ckpt .ftz .gz .h5 .joblib .mlmodel .model .msgpack .npy .npz .onnx .ot .parquet .pb "
    ".pickle .pkl .pt .pth .rar .safetensors .tar .tflite .tgz .wasm .xz .zip .zst .png .jpg .jpeg .webp .gif .bmp "
    ".tif .tiff .dcm .nii .mp3 .wav .flac .ogg .mp4 .pdf .db".split()
)
GITATTRIBUTES = "".join(f"*{s} filter=lfs diff=lfs merge=lfs -text\n" for s in LFS_SUFFIXES)
# Path pieces of `_ROUTES`: `{repo}` is `[datasets/|spaces/]namespace/name`, `{api}` the same under
# `/api/{models|datasets|spaces}/`, `{rev}` a revision (one quoted segment, `refs%2Fpr%2F1`, or a raw `refs/x/y`).
_PIECES = {"repo": r"(?:(?P<type>datasets|spaces)/)?(?P<repo_id>[^/]+/[^/]+)",
           "api": r"/api/(?P<type>models|datasets|spaces)/(?P<repo_id>[^/]+/[^/]+)",
           "rev": r"(?P<revision>refs/[^/]+/[^/]+|[^/]+)"}
# (methods, path, needs a bearer token, the `_Handler` method that answers, called with the path's named groups)
_ROUTES = [(methods.split(), re.compile(path.format(**_PIECES)), auth, name) for methods, path, auth, name in [
    ("GET HEAD", "/{repo}/resolve/{rev}/(?P<path>.+)", False, "resolve"),
    ("GET", "/api/whoami-v2", True, "whoami"),
    ("POST", "/api/validate-yaml", False, "validate_yaml"),
    ("POST", "/api/repos/create", True, "create_repo"),
    ("DELETE", "/api/repos/delete", True, "delete_repo"),
    ("PUT", "/lfs-upload/(?P<oid>[^/]+)", False, "lfs_upload"),  # signed URL instead of a token
    ("POST", r"/{repo}\.git/info/lfs/objects/batch", True, "lfs_batch"),
    ("GET", "{api}(?:/revision/{rev})?", False, "repo_info"),
    ("POST", "{api}/preupload/{rev}", True, "preupload"),
    ("POST", "{api}/commit/{rev}", True, "commit"),
    ("GET", "{api}/tree/{rev}(?:/(?P<path>.*))?", False, "tree"),
    ("POST", "{api}/paths-info/{rev}", True, "paths_info"),
    ("GET", "{api}/refs", False, "refs"),
    ("GET", "{api}/commits/{rev}", False, "commits"),
    ("POST", "{api}/(?P<kind>branch|tag)/(?P<name>.+)", True, "create_ref"),  # a tag's `name` is its revision
    ("DELETE", "{api}/(?P<kind>branch|tag)/(?P<name>.+)", True, "delete_ref"),
]]


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubError(Exception):
    """An HTTP error reply: status, message and the `X-Error-Code` the clients map to exceptions."""

    def __init__(self, status: int, message: str, code: str | None = None, extra_headers: dict | None = None,
                 body: dict | None = None):
        super().__init__(message)
        self.status, self.body = status, {"error": message} if body is None else body
        self.headers = {**(extra_headers or {}), **({"X-Error-Code": code} if code else {}),
                        "X-Error-Message": message.replace("\n", " ")}


@dataclass
class _Fault:
    remaining: int
    status: int
    method: str | None
    path_contains: str | None


def _file_entry(path: str, info: dict) -> dict:
    entry = {"type": "file", "oid": info["git_oid"], "size": info["size"], "path": path}
    if info["lfs"]:
        entry["lfs"] = {"oid": info["sha256"], "size": info["size"], "pointerSize": info["pointer_size"]}
    return entry


def _dir_entry(path: str) -> dict:
    return {"type": "directory", "oid": hashlib.sha1(f"tree:{path}".encode()).hexdigest(), "path": path}


def _list_tree(files: dict, base: str, recursive: bool) -> list[dict]:
    """Files and folders under `base` ('' = root); folders are implied by file paths, as in git."""
    prefix = f"{base.strip('/')}/" if base.strip("/") else ""
    below = [path for path in sorted(files) if path.startswith(prefix)]
    if prefix and not below:
        raise HubError(404, f"{base} does not exist", "EntryNotFound")
    entries, dirs = [], set()
    for path in below:
        parts = path[len(prefix):].split("/")
        depths = range(1, len(parts) if recursive else min(len(parts), 2))  # every folder above it, or the top one
        dirs.update(prefix + "/".join(parts[:depth]) for depth in depths)
        if recursive or len(parts) == 1:
            entries.append(_file_entry(path, files[path]))
    return [_dir_entry(d) for d in sorted(dirs)] + entries


def _parse_range(header: str, size: int) -> tuple[int, int]:
    """`bytes=a-b`, `bytes=a-` or `bytes=-n` (the last n bytes) as inclusive (start, end)."""
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    first, last = match.groups() if match else ("", "")
    if first:
        start, end = int(first), min(int(last or size - 1), size - 1)
    elif last:
        start, end = max(size - int(last), 0), size - 1
    if not (first or last) or start >= size > 0:
        raise HubError(416, f"Range {header!r} not satisfiable", extra_headers={"Content-Range": f"bytes */{size}"})
    return start, end


def _front_matter(content: str) -> tuple[dict | None, list[dict]]:
    """A README's YAML front matter and its errors."""
    import yaml

    if not content.startswith("---"):
        return None, []
    parts = content.split("\n---", 1)
    if len(parts) < 2:
        return None, [{"message": "YAML front matter is not closed with '---'"}]
    try:
        data = yaml.safe_load(parts[0][3:])
    except yaml.YAMLError as err:
        return None, [{"message": f"Invalid YAML: {err}"}]
    if data is not None and not isinstance(data, dict):
        return None, [{"message": "YAML front matter must be a mapping"}]
    return data or None, []


class Hub:
    """The server's state, independent of HTTP: repos, commits and refs in `repos`, saved as JSON next to the blob
    store (the HTTP handler saves after every write request). Callers hold `lock` (the handler does, per request)."""

    def __init__(self, root: Path, base_url: str, token: str | None):
        self.root, self.base_url, self.token = root, base_url, token
        self.lock = threading.RLock()
        self.secret = secrets.token_bytes(32)
        (root / "blobs").mkdir(parents=True, exist_ok=True)
        state = json.loads((root / "state.json").read_text()) if (root / "state.json").exists() else {}
        self.repos: dict = state.get("repos", {})
        self.counter: int = state.get("counter", 0)

    def save(self) -> None:
        tmp = self.root / "state.json.tmp"
        tmp.write_text(json.dumps({"repos": self.repos, "counter": self.counter}))
        os.replace(tmp, self.root / "state.json")

    def sign(self, oid: str, size: str) -> str:
        return hmac.new(self.secret, f"{oid}:{size}".encode(), hashlib.sha256).hexdigest()

    def repo_url(self, repo: dict) -> str:
        return f"{self.base_url}/{URL_PREFIX[repo['type']]}{repo['id']}"

    # -- blobs
    def blob_path(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256

    def put_blob(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        path = self.blob_path(sha)
        if not path.exists():
            tmp = path.with_suffix(f".tmp{threading.get_ident()}")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return sha

    def regular_entry(self, data: bytes) -> dict:
        return {"sha256": self.put_blob(data), "size": len(data), "git_oid": _git_blob_oid(data), "lfs": False,
                "pointer_size": 0}

    # -- repos, revisions and commits
    def repo(self, repo_type: str, repo_id: str) -> dict:
        repo = self.repos.get(f"{repo_type}:{repo_id}")
        if repo is None:
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return repo

    def new_commit(self, repo: dict, parent: str | None, files: dict, title: str, message: str = "") -> str:
        self.counter += 1
        oid = hashlib.sha1(f"{self.counter}:{parent}:{secrets.token_hex(8)}".encode()).hexdigest()
        repo["commits"][oid] = {
            "id": oid, "parent": parent, "files": files, "title": title, "message": message, "date": _now(),
        }
        return oid

    def resolve_revision(self, repo: dict, revision: str) -> str:
        for prefix, table in (("refs/heads/", "branches"), ("refs/tags/", "tags")):  # `main` or `refs/heads/main`
            if revision.removeprefix(prefix) in repo[table]:
                return repo[table][revision.removeprefix(prefix)]
        match = re.fullmatch(r"refs/pr/(\d+)", revision)
        if match and int(match.group(1)) <= len(repo["prs"]):
            return repo["prs"][int(match.group(1)) - 1]
        if revision in repo["commits"]:
            return revision
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def files(self, repo: dict, revision: str) -> dict:
        return repo["commits"][self.resolve_revision(repo, revision)]["files"]

    def tree(self, repo_type: str, repo_id: str, revision: str, path: str, recursive: bool) -> list[dict]:
        return _list_tree(self.files(self.repo(repo_type, repo_id), revision), path, recursive)

    def history(self, repo: dict, revision: str) -> list[dict]:
        """The commits from `revision` back to the repo's first, newest first."""
        oid, out = self.resolve_revision(repo, revision), []
        while oid is not None:
            commit = repo["commits"][oid]
            out.append({"id": oid, "title": commit["title"], "message": commit["message"], "date": commit["date"],
                        "authors": [{"user": USER_NAME}]})
            oid = commit["parent"]
        return out

    def apply(self, files: dict, key: str | None, value: dict) -> None:
        """One commit operation (a line of the commit's NDJSON body) applied to the path index `files`."""
        path = value.get("path", "")
        if key == "file":
            content = value.get("content", "")
            data = base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
            files[path] = self.regular_entry(data)
        elif key == "lfsFile":
            sha, blob = value["oid"], self.blob_path(value["oid"])
            if not blob.exists():
                raise HubError(400, f"LFS object {sha} for {path} was never uploaded")
            size = blob.stat().st_size
            pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {size}\n".encode()
            files[path] = {"sha256": sha, "size": size, "git_oid": _git_blob_oid(pointer), "lfs": True,
                           "pointer_size": len(pointer)}
        elif key == "deletedFile":
            if files.pop(path, None) is None:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
        elif key == "deletedFolder":
            for name in [p for p in files if p.startswith(path.rstrip("/") + "/")]:
                del files[name]
        elif key != "header":
            raise HubError(400, f"Unknown commit operation {key!r}")


class _Handler(LoopbackHandler):
    server: "HubServer"

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        self.query, self.hub = parse_qs(split.query), self.server.hub
        try:
            # Always consume the body first, so that an early error reply keeps the keep-alive stream in sync.
            self.body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.server.maybe_fail(self.command, split.path)
            self._route(split.path)
        except Exception as err:  # noqa: BLE001 - a test server reports its own bugs as 500s
            error = err if isinstance(err, HubError) else HubError(500, f"{type(err).__name__}: {err}")
            self.send_json(error.body, error.status, error.headers)

    def send_response(self, code, message=None) -> None:
        # Recorded before the reply leaves: a client that has its answer must find its request in `requests`.
        # (A malformed request line is answered before `command` and `path` are set.)
        self.server.requests.append((getattr(self, "command", None), urlsplit(getattr(self, "path", "")).path, code))
        super().send_response(code, message)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _dispatch

    def _route(self, path: str) -> None:
        for methods, pattern, auth, name in _ROUTES:
            if self.command in methods and (match := pattern.fullmatch(path)):
                break
        else:
            raise HubError(404, f"{self.command} {path} is not implemented")
        if auth:  # any bearer token, or exactly the server's `token` if it has one
            header = self.headers.get("Authorization", "")
            token = header[len("Bearer "):].strip() if header.startswith("Bearer ") else ""
            if not token or self.hub.token not in (None, token):
                raise HubError(401, "Invalid credentials in Authorization header")
        args = {key: unquote(value) for key, value in match.groupdict().items() if value is not None}
        # One request at a time reads or changes the state; downloads stream outside the lock (`resolve` takes it to
        # look the file up).
        with contextlib.nullcontext() if name == "resolve" else self.hub.lock:
            if "repo_id" in args:
                args["repo"] = self.hub.repo(REPO_TYPES[args.pop("type", "models")], args.pop("repo_id"))
            answer = getattr(self, name)(**args)
            if self.command in ("POST", "PUT", "DELETE"):  # a change is on disk before it is answered
                self.hub.save()
        if answer is not None:
            self.send_json(answer)

    def flag(self, name: str) -> bool:
        return self.query.get(name, ["0"])[0].lower() in ("1", "true")

    def json_body(self) -> dict:
        return json.loads(self.body) if self.body else {}

    # ---------------------------------------------------------------- routes: a JSON answer, or None once replied
    def whoami(self) -> dict:
        return {"type": "user", "name": USER_NAME, "fullname": "Test User", "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"role": "write"}}}

    def validate_yaml(self) -> None:
        # Always a JSON body: the client parses it before looking at the status code.
        errors = _front_matter(self.json_body().get("content", ""))[1]
        self.send_json({"errors": errors, "warnings": []}, 400 if errors else 200)

    def create_repo(self) -> dict:
        body, hub = self.json_body(), self.hub
        repo_type = body.get("type") or "model"
        if repo_type not in URL_PREFIX:
            raise HubError(400, f"Invalid repo type {repo_type!r}")
        repo_id = f"{body.get('organization') or USER_NAME}/{body['name']}"
        repo = {"type": repo_type, "id": repo_id, "private": body.get("visibility") == "private"
                or bool(body.get("private")), "created": _now(), "commits": {}, "branches": {}, "tags": {}, "prs": []}
        if f"{repo_type}:{repo_id}" in hub.repos:  # the client reads an existing repo's url from the 409 body
            message = "You already created this repo"
            raise HubError(409, message, body={"error": message, "url": hub.repo_url(repo)})
        files = {".gitattributes": hub.regular_entry(GITATTRIBUTES.encode())}
        repo["branches"]["main"] = hub.new_commit(repo, None, files, "initial commit")
        hub.repos[f"{repo_type}:{repo_id}"] = repo
        return {"url": hub.repo_url(repo), "name": repo_id, "id": repo_id}

    def delete_repo(self) -> dict:
        body = self.json_body()
        repo = self.hub.repo(body.get("type") or "model", f"{body.get('organization') or USER_NAME}/{body['name']}")
        del self.hub.repos[f"{repo['type']}:{repo['id']}"]
        return {}

    def repo_info(self, repo: dict, revision: str = "main") -> dict:
        oid = self.hub.resolve_revision(repo, revision)
        commit = repo["commits"][oid]
        siblings = [{"rfilename": path, "size": info["size"], "blobId": info["git_oid"],
                     **({"lfs": {"sha256": info["sha256"], "size": info["size"],
                                 "pointerSize": info["pointer_size"]}} if info["lfs"] else {})}
                    for path, info in sorted(commit["files"].items())]
        readme = commit["files"].get("README.md")
        card = readme and _front_matter(self.hub.blob_path(readme["sha256"]).read_text(errors="replace"))[0]
        return {
            "_id": hashlib.sha1(repo["id"].encode()).hexdigest()[:24], "id": repo["id"],
            "author": repo["id"].split("/")[0], "sha": oid, "lastModified": commit["date"],
            "createdAt": repo["created"], "private": repo["private"], "gated": False, "disabled": False,
            "downloads": 0, "likes": 0, "tags": [], "siblings": siblings, "cardData": card,
        }

    # -- uploads
    def preupload(self, repo: dict, revision: str) -> dict:
        try:
            files = self.hub.files(repo, revision)
        except HubError:  # a branch that the commit will create (create_pr / new revision) has no files yet
            files = {}
        answer = []
        for item in self.json_body().get("files", []):
            # The Hub's rule of thumb: big files, known binary extensions and binary-looking content go to LFS.
            sample = base64.b64decode(item.get("sample") or "")
            lfs = int(item["size"]) >= LFS_THRESHOLD or b"\0" in sample or item["path"].lower().endswith(LFS_SUFFIXES)
            existing = files.get(item["path"])
            answer.append({"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                           "oid": existing["sha256" if lfs else "git_oid"] if existing else None})
        return {"files": answer, "commitOid": None}

    def lfs_batch(self, repo: dict) -> None:
        objects = []
        for obj in self.json_body().get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            entry = {"oid": oid, "size": size, "authenticated": True}
            if not self.hub.blob_path(oid).exists():
                query = f"size={size}&sig={self.hub.sign(oid, str(size))}"
                entry["actions"] = {"upload": {"href": f"{self.hub.base_url}/lfs-upload/{oid}?{query}"}}
            objects.append(entry)
        self.send_json({"transfer": "basic", "objects": objects},
                       headers={"Content-Type": "application/vnd.git-lfs+json"})

    def lfs_upload(self, oid: str) -> dict:
        # Presigned-URL semantics: no Authorization header is sent, so the URL carries an HMAC of (oid, size).
        size = self.query.get("size", [""])[0]
        if not hmac.compare_digest(self.query.get("sig", [""])[0], self.hub.sign(oid, size)):
            raise HubError(403, "Invalid or missing signature on LFS upload URL")
        if len(self.body) != int(size) or hashlib.sha256(self.body).hexdigest() != oid:
            raise HubError(400, f"Uploaded content does not match LFS object {oid} ({size} bytes)")
        self.hub.put_blob(self.body)
        self.server.lfs_uploads.append(oid)
        return {}

    def commit(self, repo: dict, revision: str) -> dict:
        hub = self.hub
        lines = [json.loads(line) for line in self.body.decode().splitlines() if line.strip()]
        header = next((line["value"] for line in lines if line.get("key") == "header"), {})
        head = hub.resolve_revision(repo, revision)
        if (parent := header.get("parentCommit")) and parent != head:
            raise HubError(412, f"A commit has happened since. Parent commit {parent} is not the head {head}")
        files = dict(repo["commits"][head]["files"])
        for line in lines:
            hub.apply(files, line.get("key"), line.get("value") or {})
        oid = hub.new_commit(repo, head, files, header.get("summary", ""), header.get("description", ""))
        pr_url = None
        if self.flag("create_pr"):
            repo["prs"].append(oid)
            pr_url = f"{hub.repo_url(repo)}/discussions/{len(repo['prs'])}"
        elif (branch := revision.removeprefix("refs/heads/")) in repo["branches"]:
            repo["branches"][branch] = oid
        else:
            raise HubError(400, f"Cannot commit to {revision}: not a branch")
        return {"commitOid": oid, "commitUrl": f"{hub.repo_url(repo)}/commit/{oid}", "pullRequestUrl": pr_url}

    # -- downloads, listings and refs
    def resolve(self, repo: dict, revision: str, path: str) -> None:
        with self.hub.lock:
            commit_oid = self.hub.resolve_revision(repo, revision)
            info = repo["commits"][commit_oid]["files"].get(path)
        if info is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit_oid})
        size, ranged = info["size"], bool(self.headers.get("Range"))
        start, end = _parse_range(self.headers["Range"], size) if ranged else (0, size - 1)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(max(end - start + 1, 0)),
                   "Accept-Ranges": "bytes", "ETag": f'"{info["sha256"] if info["lfs"] else info["git_oid"]}"',
                   "X-Repo-Commit": commit_oid, **({"Content-Range": f"bytes {start}-{end}/{size}"} if ranged else {})}
        self.send_headers(206 if ranged else 200, headers)
        if self.command == "GET" and end >= start:
            with open(self.hub.blob_path(info["sha256"]), "rb") as handle:  # headers are flushed: wfile is unbuffered
                self.connection.sendfile(handle, start, end - start + 1)

    def tree(self, repo: dict, revision: str, path: str = "") -> list[dict]:
        return _list_tree(self.hub.files(repo, revision), path, self.flag("recursive"))

    def paths_info(self, repo: dict, revision: str) -> list[dict]:
        files, out = self.hub.files(repo, revision), []
        for path in parse_qs(self.body.decode()).get("paths", []):  # the client posts the paths form-encoded
            path = path.strip("/")
            if path in files:
                out.append(_file_entry(path, files[path]))
            elif any(p.startswith(path + "/") for p in files):
                out.append(_dir_entry(path))
        return out

    def refs(self, repo: dict) -> dict:
        out = {kind: [{"name": n, "ref": f"refs/{ref}/{n}", "targetCommit": c} for n, c in repo[kind].items()]
               for kind, ref in (("branches", "heads"), ("tags", "tags"))}
        out["converts"] = []
        if self.flag("include_prs"):
            out["pullRequests"] = [{"name": str(i + 1), "ref": f"refs/pr/{i + 1}", "targetCommit": c}
                                   for i, c in enumerate(repo["prs"])]
        return out

    def commits(self, repo: dict, revision: str) -> list[dict]:
        return self.hub.history(repo, revision)

    def create_ref(self, repo: dict, kind: str, name: str) -> dict:
        """A branch `name` (at `startingPoint` or main), or the tag `body["tag"]` at revision `name`."""
        body = self.json_body()
        ref, table = (name, "branches") if kind == "branch" else (body["tag"], "tags")
        if ref in repo[table]:
            raise HubError(409, f"{kind.capitalize()} {ref} already exists")
        start = (body.get("startingPoint") or "main") if kind == "branch" else name
        repo[table][ref] = self.hub.resolve_revision(repo, start)
        return {}

    def delete_ref(self, repo: dict, kind: str, name: str) -> dict:
        if repo["branches" if kind == "branch" else "tags"].pop(name, None) is None:
            raise HubError(404, f"{kind.capitalize()} {name} not found", "RevisionNotFound")
        return {}


class HubServer(LoopbackServer):
    """A running loopback Hub: `.url` (no trailing slash), `.stop()`, `.requests`, `.lfs_uploads`, `.fail_next()`."""

    def __init__(self, root_dir: str | os.PathLike, port: int = 0, token: str | None = None):
        super().__init__(_Handler, port)
        self.url = self.root_url
        self.hub = Hub(Path(root_dir), self.url, token)
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status) of every request
        self.lfs_uploads: list[str] = []  # sha256 of each object uploaded by LFS PUT, in order
        self.faults: list[_Fault] = []

    def fail_next(self, n: int = 1, status: int = 500, method: str | None = None,
                  path_contains: str | None = None) -> None:
        """Answer the next `n` requests matching `method` / `path_contains` with `status` (tests of retries)."""
        with self.hub.lock:
            self.faults.append(_Fault(n, status, method, path_contains))

    def clear_faults(self) -> None:
        with self.hub.lock:
            self.faults.clear()

    def maybe_fail(self, method: str, path: str) -> None:
        with self.hub.lock:
            for fault in self.faults:
                if fault.remaining > 0 and fault.method in (None, method) and (
                        fault.path_contains is None or fault.path_contains in path):
                    fault.remaining -= 1
                    raise HubError(fault.status, f"Injected failure ({fault.status}) for {method} {path}")

    def commit_count(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> int:
        with self.hub.lock:
            return len(self.hub.history(self.hub.repo(repo_type, repo_id), revision))


def start_hub_server(root_dir: str | os.PathLike, port: int = 0, token: str | None = None) -> HubServer:
    """Start the server on 127.0.0.1:`port` (0 = any free port) with its state under `root_dir`.

    Returns once the socket listens, so clients can connect immediately. `token`, if given, is the only bearer token
    accepted for writes; by default any non-empty token is.
    """
    return HubServer(root_dir, port, token).start()


def main(argv: list[str] | None = None) -> int:
    """`python -m hf_medvlm.testing.hub_server --root DIR --port 8765`: run the loopback Hub in the foreground."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=(
        "example:\n  python -m hf_medvlm.testing.hub_server --root /tmp/hub --port 8765\n"
        "  HF_ENDPOINT=http://127.0.0.1:8765 HF_HUB_DISABLE_XET=1 HF_TOKEN=dummy python my_upload.py"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="directory for the server's blobs and state")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = any free port)")
    args = parser.parse_args(argv)
    server = HubServer(args.root, args.port)
    print(f"Hub server listening on {server.url} (state in {args.root}); Ctrl-C to stop", flush=True)
    server.serve_until_interrupted()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
