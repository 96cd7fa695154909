"""Publishing to the Hugging Face Hub: model folders (weights, processor, remote code, card) and Parquet datasets.

    from hf_medvlm.hub import push_model, push_dataset_folder, write_model_card
    write_model_card("out/model", repo_id="me/llava-med-tiny", base_models=["microsoft/llava-med-v1.5-mistral-7b"])
    push_model("out/model", "me/llava-med-tiny", revision="v0.1")
    push_dataset_folder("out/data", "me/pmc-vqa-parquet")

Both pushes create the repo (and the revision branch) if missing, upload file by file (large files through LFS),
skip files whose content is already on the Hub, and make no commit at all when nothing changed. Transient network
errors (connection failures, timeouts, 429/5xx) are retried a bounded number of times, then reported in one sentence.
Command line: `hf-medvlm push --folder FOLDER --repo_id REPO_ID` (`hf_medvlm/commands/push.py`).
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import logging
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import httpx2
import yaml
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    EvalResult,
    HfApi,
    ModelCard,
    ModelCardData,
    constants,
    get_token,
)
from huggingface_hub.errors import HfHubHTTPError

from .data.card import require_license

__all__ = [
    "HubPushError",
    "MissingTokenError",
    "render_model_card",
    "write_model_card",
    "push_model",
    "push_dataset_folder",
]

logger = logging.getLogger(__name__)

MODEL_CARD_TEMPLATE = Path(__file__).parent / "templates" / "model_card.md.jinja"
MAX_ATTEMPTS = 3  # per Hub call, on transient errors only
RETRY_WAIT_S = 1.0  # doubled after each failed attempt
MAX_FILES_PER_COMMIT = 200  # big dataset folders are committed in batches, README last
TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
# Files of a training output folder that are not part of the published model.
MODEL_IGNORE = [".*", "*/.*", "__pycache__/*", "*.pyc", "checkpoint-*/*", "runs/*", "optimizer.pt", "scheduler.pt",
                "rng_state*.pth", "training_args.bin"]
# Stale weights on the Hub that a new push must remove (a re-sharded model would otherwise load mixed shards).
MODEL_WEIGHT_PATTERNS = [
    "*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin", "pytorch_model*.bin.index.json",
]


class HubPushError(RuntimeError):
    """The Hub could not be reached or kept failing after the bounded retries."""


class MissingTokenError(ValueError):
    """No Hugging Face token is configured for a write."""


# ----------------------------------------------------------------------------------------------------- model card
def _named(items: Iterable, licenses: dict[str, str]) -> list[dict[str, str | None]]:
    """Base models / datasets as `{"id", "license"}`: given as ids or dicts, licences filled from `licenses`."""
    out = []
    for item in items or ():
        entry = {"id": item, "license": None} if isinstance(item, str) else {"license": None, **dict(item)}
        entry["license"] = entry["license"] or licenses.get(entry["id"])
        out.append(entry)
    return out


def _is_hub_id(name: str) -> bool:
    return bool(name) and " " not in name and name.count("/") <= 1 and not name.startswith((".", "/", "~"))


def _package_versions() -> list[tuple[str, str]]:
    from importlib.metadata import PackageNotFoundError, version

    import hf_medvlm

    rows = [("hf_medvlm", hf_medvlm.__version__)]
    for name in ("transformers", "trl", "peft", "datasets", "huggingface_hub", "accelerate", "torch"):
        try:
            rows.append((name, version(name)))
        except PackageNotFoundError:
            rows.append((name, "not installed"))
    return rows


def _git_revision() -> str:
    """The hf_medvlm checkout's commit (`+dirty` with uncommitted changes), or `unknown` for an installed wheel."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _as_yaml(config: Any) -> str | None:
    if config is None:
        return None
    if isinstance(config, Path) or (isinstance(config, str) and "\n" not in config and Path(config).is_file()):
        return Path(config).read_text().strip()
    if isinstance(config, str):  # already YAML/JSON text
        return config.strip()
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    return yaml.safe_dump(json.loads(json.dumps(config, default=str)), sort_keys=False).strip()


def render_model_card(*, repo_id: str | None = None, base_models=(), datasets=(), licenses: dict | None = None,
                      recipe_path=None, resolved_config=None, eval_results: list[dict] | None = None,
                      summary: str | None = None, license: str | None = None,
                      training_results: dict | None = None) -> str:
    """The README.md of a model: Hub metadata (incl. model-index) plus the body from `templates/model_card.md.jinja`.

    `base_models` / `datasets`: ids or `{"id", "license"}` dicts; `licenses` maps ids to licences. `resolved_config`
    is a dict, a dataclass with `to_dict()`, or a YAML/JSON file. `eval_results` are `huggingface_hub.EvalResult`
    keyword dicts whose `metric_name` names the protocol. `license` is this model's own licence (default `other`).
    `training_results` are the trainer's final metrics (e.g. `train_loss`, `train_runtime`, `epoch`).
    """
    licenses = dict(licenses or {})
    base, data = _named(base_models, licenses), _named(datasets, licenses)
    results = [EvalResult(**r) for r in eval_results or []]
    name = (repo_id or "hf_medvlm model").split("/")[-1]
    card_data = ModelCardData(
        license=license or "other", library_name="transformers", pipeline_tag="image-text-to-text",
        base_model=[b["id"] for b in base if _is_hub_id(b["id"])] or None,
        datasets=[d["id"] for d in data if _is_hub_id(d["id"])] or None,
        tags=["medical", "biomedical", "vision-language", "llava-med", "hf_medvlm"],
        eval_results=results or None, model_name=name if results else None,
    )
    recipe = Path(recipe_path) if recipe_path else None
    card = ModelCard.from_template(
        card_data, template_path=str(MODEL_CARD_TEMPLATE), repo_id=repo_id or "<repo_id>", model_name=name,
        summary=summary, base_models=base, datasets=data, license=license or "other", eval_results=results,
        recipe_name=str(recipe_path) if recipe_path else None,
        recipe_text=recipe.read_text().strip() if recipe and recipe.is_file() else None,
        resolved_config=_as_yaml(resolved_config), versions=_package_versions(), git_revision=_git_revision(),
        training_results=sorted((training_results or {}).items()),
    )
    return str(card)


def write_model_card(folder, **kwargs) -> Path:
    """Render the model card (same keywords as `render_model_card`) into `folder/README.md`."""
    path = Path(folder) / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_model_card(**kwargs), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------------------- errors
def _resolve_token(token: str | None) -> str:
    token = token or get_token()
    if not token:
        raise MissingTokenError(
            "No Hugging Face token found: set the HF_TOKEN environment variable (or run `hf auth login`) to a token "
            "with write access, or pass token=..."
        )
    return token


def _is_transient(err: BaseException) -> bool:
    if isinstance(err, HfHubHTTPError) and err.response is not None:
        return err.response.status_code in TRANSIENT_STATUS
    return isinstance(err, (httpx2.TransportError, ConnectionError, TimeoutError))


def _with_retries(what: str, call: Callable[[], Any]) -> Any:
    """Run one Hub call, retrying transient failures `MAX_ATTEMPTS` times in all, with doubling waits."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return call()
        except Exception as err:
            if not _is_transient(err):
                raise
            if attempt == MAX_ATTEMPTS:
                raise HubPushError(
                    f"{what} failed after {MAX_ATTEMPTS} attempts against {constants.ENDPOINT} "
                    f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); check your network "
                    "connection and HF_ENDPOINT, then push again (files already uploaded are not sent twice)."
                ) from err
            wait = RETRY_WAIT_S * 2 ** (attempt - 1)
            logger.warning("%s failed (%s); retrying in %.1fs (attempt %d/%d)", what, err, wait, attempt + 1,
                           MAX_ATTEMPTS)
            time.sleep(wait)


# ----------------------------------------------------------------------------------------------------- pushing
def _local_files(folder: Path, ignore: list[str]) -> list[str]:
    files = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and not any(fnmatch.fnmatch(rel, pat) for pat in ignore):
            files.append(rel)
    return files


def _prepare_repo(api: HfApi, repo_id: str, repo_type: str, revision: str | None, private: bool | None) -> None:
    _with_retries(f"creating {repo_type} repo {repo_id}",
                  lambda: api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True))
    if revision and revision != "main":
        _with_retries(f"creating branch {revision} of {repo_id}",
                      lambda: api.create_branch(repo_id, branch=revision, repo_type=repo_type, exist_ok=True))


def _stale_remote_files(api: HfApi, repo_id: str, repo_type: str, revision: str | None, local: set[str],
                        patterns: list[str]) -> list[str]:
    remote = _with_retries(f"listing files of {repo_id}",
                           lambda: api.list_repo_files(repo_id, repo_type=repo_type, revision=revision))
    return [f for f in remote if f not in local and any(fnmatch.fnmatch(f, p) for p in patterns)]


def _commit(api: HfApi, repo_id: str, repo_type: str, revision: str | None, operations: list, message: str):
    return _with_retries(
        f"committing {len(operations)} file(s) to {repo_id}",
        lambda: api.create_commit(repo_id, operations=operations, commit_message=message, repo_type=repo_type,
                                  revision=revision),
    )


def _commit_in_batches(api: HfApi, repo_id: str, repo_type: str, revision: str | None, folder: Path,
                       files: list[str], last: list, message: str):
    """Upload `files` (paths in `folder`) in commits of at most MAX_FILES_PER_COMMIT, then `last` (card, deletions).

    Each operation only holds a path: files are hashed and uploaded one by one, so memory does not grow with the
    folder. Unchanged files are skipped by the client; a commit whose files are all unchanged is not sent.
    """
    adds = [CommitOperationAdd(path_in_repo=f, path_or_fileobj=str(folder / f)) for f in files]
    batches = [adds[i:i + MAX_FILES_PER_COMMIT] for i in range(0, len(adds), MAX_FILES_PER_COMMIT)] or [[]]
    batches[-1] = batches[-1] + last
    info = None
    for number, batch in enumerate(batches, start=1):
        suffix = f" (part {number}/{len(batches)})" if len(batches) > 1 else ""
        info = _commit(api, repo_id, repo_type, revision, batch, message + suffix)
    return info


def _imports_package(module: Path) -> bool:
    for node in ast.walk(ast.parse(module.read_text(), filename=str(module))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
        if any(n == "hf_medvlm" or n.startswith("hf_medvlm.") for n in names):
            return True
    return False


def _check_remote_code(folder: Path) -> None:
    """`auto_map` modules must be in the folder and must not import hf_medvlm (users without it load them)."""
    for name in ("config.json", "processor_config.json", "tokenizer_config.json", "preprocessor_config.json"):
        path = folder / name
        if not path.is_file():
            continue
        auto_map = json.loads(path.read_text()).get("auto_map") or {}
        for target in auto_map.values():
            for ref in [target] if isinstance(target, str) else [t for t in target if t]:
                module = folder / (ref.split("--")[-1].rsplit(".", 1)[0] + ".py")
                if not module.is_file():
                    raise FileNotFoundError(
                        f"{path} maps to remote code {ref!r} but {module.name} is not in {folder}.")
                if _imports_package(module):
                    raise ValueError(f"{module} imports hf_medvlm, so it cannot be loaded with trust_remote_code "
                                     "where hf_medvlm is not installed; use relative imports.")


def push_model(folder, repo_id: str, *, revision: str | None = None, private: bool | None = None,
               token: str | None = None, commit_message: str | None = None, card_kwargs: dict | None = None):
    """Upload a `save_pretrained` folder (weights, processor, chat template, generation config, remote code, card).

    A PEFT adapter folder (`adapter_config.json` + `adapter_model.safetensors`, from LoRA training) works too.
    Creates the repo and the `revision` branch if missing. Without a README.md in the folder a card is rendered
    from `card_kwargs` (keywords of `render_model_card`). Returns the `CommitInfo` (a `str`: the commit URL) of the
    last commit, or of the current head when nothing changed.
    """
    folder = Path(folder)
    if not (folder / "config.json").is_file() and not (folder / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{folder} is not a saved model folder: config.json (or a PEFT adapter's "
                                "adapter_config.json) is missing.")
    files = _local_files(folder, MODEL_IGNORE)
    if not any(f.endswith((".safetensors", ".bin")) for f in files):
        raise FileNotFoundError(f"{folder} has no weights (*.safetensors); save the model with save_pretrained first.")
    _check_remote_code(folder)
    api = HfApi(token=_resolve_token(token))
    _prepare_repo(api, repo_id, "model", revision, private)
    last = []
    if "README.md" not in files:
        card = render_model_card(repo_id=repo_id, **(card_kwargs or {}))
        last.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card.encode()))
    stale = _stale_remote_files(api, repo_id, "model", revision, set(files), MODEL_WEIGHT_PATTERNS)
    last += [CommitOperationDelete(path_in_repo=f) for f in stale]
    message = commit_message or f"Upload model from {folder.name} with hf_medvlm"
    return _commit_in_batches(api, repo_id, "model", revision, folder, files, last, message)


def _read_card_metadata(folder: Path) -> dict:
    readme = folder / "README.md"
    if not readme.is_file():
        raise FileNotFoundError(f"{readme} is missing: a dataset folder needs a card with `license:` and `configs:`.")
    text = readme.read_text(encoding="utf-8")
    if not text.startswith("---") or "\n---" not in text[3:]:
        raise ValueError(f"{readme} has no YAML metadata block (--- ... ---) with `license:` and `configs:`.")
    meta = yaml.safe_load(text[3:].split("\n---", 1)[0]) or {}
    if not isinstance(meta, dict):
        raise ValueError(f"{readme}: the YAML metadata block must be a mapping.")
    return meta


def _check_dataset_card(folder: Path, meta: dict, files: list[str]) -> list[str]:
    """Refuse a card without a licence or with configs whose data files are missing; return all data patterns."""
    readme = folder / "README.md"
    require_license(meta, where=str(readme))
    configs = meta.get("configs")
    if not configs:
        raise ValueError(f"{readme} has no `configs:` list naming each subset's data files.")
    if sum(bool(c.get("default")) for c in configs) > 1:
        raise ValueError(f"{readme}: more than one config has `default: true`.")
    patterns = []
    for config in configs:
        data_files = config.get("data_files") or []
        data_files = [data_files] if isinstance(data_files, (str, dict)) else data_files
        for entry in data_files:
            for pattern in _entry_patterns(entry):
                if not any(fnmatch.fnmatch(f, pattern) for f in files):
                    raise FileNotFoundError(f"{readme}: config {config.get('config_name')!r} lists data files "
                                            f"{pattern!r} but no file in {folder} matches.")
                patterns.append(pattern)
    return patterns


def _entry_patterns(entry) -> list[str]:
    if isinstance(entry, str):
        return [entry]
    paths = entry.get("path")
    return [paths] if isinstance(paths, str) else list(paths or [])


def push_dataset_folder(folder, repo_id: str, *, revision: str | None = None, private: bool | None = None,
                        token: str | None = None, commit_message: str | None = None):
    """Upload a Parquet dataset folder (several configs, README with `configs:` and a licence) as a dataset repo.

    Data files go first, in batches, streamed from disk; the card goes in the last commit together with the
    deletion of stale remote shards of the listed configs. Returns the `CommitInfo` like `push_model`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a directory.")
    files = _local_files(folder, [".*", "*/.*", "__pycache__/*"])
    patterns = _check_dataset_card(folder, _read_card_metadata(folder), files)
    api = HfApi(token=_resolve_token(token))
    _prepare_repo(api, repo_id, "dataset", revision, private)
    stale = _stale_remote_files(api, repo_id, "dataset", revision, set(files), patterns)
    last = [CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(folder / "README.md"))]
    last += [CommitOperationDelete(path_in_repo=f) for f in stale]
    message = commit_message or f"Upload dataset from {folder.name} with hf_medvlm"
    data_files = [f for f in files if f != "README.md"]
    return _commit_in_batches(api, repo_id, "dataset", revision, folder, data_files, last, message)
