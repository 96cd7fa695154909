"""Publishing to the Hugging Face Hub: model folders (weights, processor, remote code, card) and Parquet datasets.

    from hf_medvlm.hub import push_model, push_dataset_folder, write_model_card
    write_model_card("out/model", repo_id="me/llava-med-tiny", base_models=["microsoft/llava-med-v1.5-mistral-7b"])
    push_model("out/model", "me/llava-med-tiny", revision="v0.1")
    push_dataset_folder("out/data", "me/pmc-vqa-parquet")

Each push first refuses a folder that `from_pretrained` / `load_dataset` could not load (`InvalidFolderError`), then
uploads it with `HfApi.upload_folder`. What is checked, and which errors are retried or end at once: docs/hub.md.
Command line: `hf-medvlm push --folder FOLDER --repo_id REPO_ID` (`hf_medvlm/commands/push.py`).
"""

from __future__ import annotations

import ast
import ipaddress
import json
import subprocess
from contextlib import contextmanager
from fnmatch import fnmatch
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlsplit

import httpx2
import yaml
from huggingface_hub import (
    DatasetCard,
    EvalResult,
    HfApi,
    ModelCard,
    ModelCardData,
    constants,
    get_token,
)
from huggingface_hub.errors import (
    GatedRepoError, HFValidationError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError,
)
from huggingface_hub.file_download import repo_folder_name
from safetensors import SafetensorError, safe_open

from . import __version__
from .files import atomic_write_text

__all__ = [
    "HubPushError",
    "HubAccessError",
    "MissingTokenError",
    "InvalidFolderError",
    "render_model_card",
    "write_model_card",
    "validate_model_folder",
    "validate_dataset_folder",
    "push_model",
    "push_dataset_folder",
    "is_loopback_endpoint",
    "require_hub_access",
    "check_source",
]

MODEL_CARD_TEMPLATE = Path(__file__).parent / "templates" / "model_card.md.jinja"
HIDDEN = [".*", "*/.*", "__pycache__/*", "*.pyc"]  # incl. the data writer's unfinished `.tmp-*` folders
# Files of a training output folder that are not part of the published model.
MODEL_IGNORE = HIDDEN + ["checkpoint-*/*", "runs/*", "optimizer.pt", "scheduler.pt", "rng_state*.pth",
                         "training_args.bin"]
# Stale weights on the Hub that a new push must remove (a re-sharded model would otherwise load mixed shards).
MODEL_WEIGHT_PATTERNS = ["*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin",
                         "pytorch_model*.bin.index.json"]
# Weight files in the order transformers / peft look for them.
MODEL_WEIGHTS = ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json"]
ADAPTER_WEIGHTS = ["adapter_model.safetensors", "adapter_model.bin"]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")
AUTO_MAP_FILES = ("config.json", "processor_config.json", "tokenizer_config.json", "preprocessor_config.json")


class HubPushError(RuntimeError):
    """The Hub could not be reached, or kept failing after huggingface_hub's retries: push again later."""


class HubAccessError(ValueError):
    """A push no retry can fix: offline mode, or the Hub refused it (HTTP 401, 403, 404)."""


class MissingTokenError(HubAccessError):
    """No Hugging Face token is configured for a write."""


class InvalidFolderError(ValueError):
    """The folder would not load from the Hub: a missing, empty or truncated file, a bad index, card or module."""


# ----------------------------------------------------------------------------------------------------- model card
def _named(items: Iterable, licenses: dict[str, str]) -> list[dict[str, str | None]]:
    """Base models / datasets as `{"id", "license"}`: given as ids or dicts, licences filled from `licenses`."""
    entries = [{"id": item} if isinstance(item, str) else dict(item) for item in items or ()]
    return [{**entry, "license": entry.get("license") or licenses.get(entry["id"])} for entry in entries]


def _is_hub_id(name: str) -> bool:
    return bool(name) and " " not in name and name.count("/") <= 1 and not name.startswith((".", "/", "~"))


def _package_versions() -> list[tuple[str, str]]:
    rows = [("hf_medvlm", __version__)]
    for name in ("transformers", "trl", "peft", "datasets", "huggingface_hub", "accelerate", "torch"):
        try:
            rows.append((name, version(name)))
        except PackageNotFoundError:
            rows.append((name, "not installed"))
    return rows


def _git_revision() -> str:
    """The hf_medvlm checkout's commit (`+dirty` with uncommitted changes), or `unknown` for an installed wheel."""
    # `--exclude=*` ignores tags, so the commit is always named by its full hash.
    command = ["git", "describe", "--always", "--abbrev=40", "--dirty=+dirty", "--exclude=*"]
    try:
        git = subprocess.run(command, cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return git.stdout.strip() if git.returncode == 0 else "unknown"


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
    # complete or absent: it marks a finished training run
    return atomic_write_text(Path(folder) / "README.md", render_model_card(**kwargs))


# ----------------------------------------------------------------------------------------------------- validation
def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InvalidFolderError(f"{path} is not readable JSON ({err}).") from err


def _check_weight_file(path: Path, named_by: str):
    """The tensor names of one weights file (None for a legacy .bin), refused if missing, empty or truncated."""
    if not path.is_file():
        raise InvalidFolderError(f"{named_by} names {path.name}, which is missing from {path.parent}.")
    if path.stat().st_size == 0:
        raise InvalidFolderError(f"{path} is empty (0 bytes); save the model again.")
    if path.suffix != ".safetensors":
        return None
    try:  # safe_open checks each dtype x shape against its bytes, and the file's length
        with safe_open(path, framework="np") as weights:
            return set(weights.keys())
    except SafetensorError as err:
        raise InvalidFolderError(f"{path} is not a valid safetensors file ({err}); it is probably truncated, so "
                                 "save the model again.") from err


def _check_index(index_path: Path) -> None:
    """Every shard the index names is a valid file that holds the tensors the index maps to it."""
    weight_map = _read_json(index_path).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise InvalidFolderError(f"{index_path} has no weight_map naming the shards.")
    held = {s: _check_weight_file(index_path.parent / s, index_path.name) for s in sorted(set(weight_map.values()))}
    for tensor, shard in weight_map.items():
        if held[shard] is not None and tensor not in held[shard]:
            raise InvalidFolderError(f"{index_path.name} maps {tensor} to {shard}, which has no such tensor (are the "
                                     "shards from another save?).")


def _check_weights(folder: Path, names: list[str]) -> None:
    name = next((n for n in names if (folder / n).is_file()), None)
    if name is None:
        raise InvalidFolderError(f"{folder} has no weights ({' or '.join(names)}); save the model with "
                                 "save_pretrained first.")
    if name.endswith(".index.json"):
        _check_index(folder / name)
    else:
        _check_weight_file(folder / name, name)


def _check_processor(folder: Path, config: dict) -> None:
    """A tokenizer for a model with text, an image processor for one with vision, where AutoProcessor looks."""
    has_tokenizer = (folder / "tokenizer_config.json").is_file() and any(
        (folder / f).is_file() for f in TOKENIZER_FILES)
    if ("text_config" in config or "vocab_size" in config) and not has_tokenizer:
        raise InvalidFolderError(f"{folder} has no tokenizer (tokenizer_config.json with tokenizer.json or "
                                 "tokenizer.model); save the processor or tokenizer there with save_pretrained.")
    processor = folder / "processor_config.json"
    has_images = (folder / "preprocessor_config.json").is_file() or (
        processor.is_file() and "image_processor" in _read_json(processor))
    if "vision_config" in config and not has_images:
        raise InvalidFolderError(f"{folder} has no image processor (preprocessor_config.json, or processor_config.json "
                                 "with an image_processor); save the processor there with save_pretrained.")


def _top_level_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _check_module(folder: Path, ref: str, named_by: Path) -> None:
    """`module.Class` from an auto_map: the module is in the folder under an importable name and defines the class;
    its relative imports are there too and it does not import hf_medvlm (users without the package load it)."""
    module, class_name = ref.rsplit(".", 1)
    path = folder / f"{module}.py"
    if not module.isidentifier() or not path.is_file():
        raise InvalidFolderError(f"{named_by} maps to remote code {ref!r} but {path.name} is not in {folder}.")
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as err:
        raise InvalidFolderError(f"{path} (remote code named in {named_by.name}) does not parse: {err}.") from err
    if class_name not in _top_level_names(tree):
        raise InvalidFolderError(f"{named_by} maps to {ref!r} but {path.name} defines no {class_name}.")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            for rel in [node.module] if node.module else [alias.name for alias in node.names]:
                if not (folder / f"{rel.split('.')[0]}.py").is_file():
                    raise InvalidFolderError(f"{path} imports .{rel}, which is not in {folder}.")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            if any(n.split(".")[0] == "hf_medvlm" for n in names):
                raise InvalidFolderError(f"{path} imports hf_medvlm, so it cannot be loaded with trust_remote_code "
                                         "where hf_medvlm is not installed; use relative imports.")


def _check_remote_code(folder: Path) -> None:
    for name in AUTO_MAP_FILES:
        path = folder / name
        auto_map = (_read_json(path).get("auto_map") or {}) if path.is_file() else {}
        for target in auto_map.values():
            for ref in [target] if isinstance(target, str) else [t for t in target if t]:
                if "--" not in ref:  # `other/repo--module.Class` is code from another repo
                    _check_module(folder, ref, path)


def validate_model_folder(folder) -> None:
    """Refuse (`InvalidFolderError`) a `save_pretrained` folder that `from_pretrained` could not load from the Hub:
    config, weights (every shard an index names), tokenizer, image processor, `auto_map` modules (docs/hub.md)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a directory.")
    if (folder / "adapter_config.json").is_file():
        _read_json(folder / "adapter_config.json")
        _check_weights(folder, ADAPTER_WEIGHTS)
        return
    if not (folder / "config.json").is_file():
        raise InvalidFolderError(f"{folder} is not a saved model folder: config.json (or a PEFT adapter's "
                                 "adapter_config.json) is missing.")
    config = _read_json(folder / "config.json")
    _check_weights(folder, MODEL_WEIGHTS)
    _check_processor(folder, config)
    _check_remote_code(folder)


def _check_data_file(path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.stat().st_size == 0:
        raise InvalidFolderError(f"{path} is empty (0 bytes).")
    if path.suffix == ".parquet":
        try:
            pq.read_metadata(path)
        except (pa.ArrowException, OSError) as err:
            raise InvalidFolderError(f"{path} is not readable Parquet ({err}).") from err


def validate_dataset_folder(folder) -> list[str]:
    """Refuse (`InvalidFolderError`) a dataset folder whose card `load_dataset` could not follow.

    The README needs a licence and `configs:` with at most one default; every `data_files` pattern must match files
    (resolved as `load_dataset` resolves them), which must be non-empty and, for Parquet, readable. Returns the
    patterns (remote files matching them that the folder no longer has are stale).
    """
    from datasets.data_files import resolve_pattern, sanitize_patterns
    from datasets.utils.metadata import MetadataConfigs

    from .data.card import require_license

    folder = Path(folder)
    readme = folder / "README.md"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a directory.")
    if not readme.is_file():
        raise InvalidFolderError(f"{readme} is missing: a dataset folder needs a card with `license:` and `configs:`.")
    data = DatasetCard.load(readme).data
    require_license(data.to_dict(), where=str(readme))
    try:
        configs = MetadataConfigs.from_dataset_card_data(data)
        configs.get_default_config_name()  # refuses several `default: true`
    except ValueError as err:
        raise InvalidFolderError(f"{readme}: {str(err).strip().splitlines()[0]}") from err
    if not configs:
        raise InvalidFolderError(f"{readme} has no `configs:` list naming each subset's data files.")
    patterns = []
    for name, config in configs.items():
        for split, split_patterns in sanitize_patterns(config.get("data_files") or {}).items():
            for pattern in split_patterns:
                try:  # raises when nothing matches
                    files = resolve_pattern(pattern, base_path=str(folder))
                except FileNotFoundError as err:
                    raise InvalidFolderError(f"{readme}: config {name!r} (split {split!r}) lists data files "
                                             f"{pattern!r} but no file in {folder} matches.") from err
                for file in files:
                    _check_data_file(Path(file))
                patterns.append(pattern)
    return patterns


# ----------------------------------------------------------------------------------------------------- errors
_REFUSALS = {
    401: "the Hub did not accept the token (HTTP 401); set HF_TOKEN to a valid token with write access",
    403: "the token may not write there (HTTP 403); use a token with write access to that namespace",
    404: "the Hub has no such repo or revision (HTTP 404); check the repo id, repo type and revision",
}


def is_loopback_endpoint(url: str | None = None) -> bool:
    """Whether `url` (default: the Hub endpoint, `HF_ENDPOINT`) is on this machine's loopback interface."""
    host = urlsplit(url or constants.ENDPOINT).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_hub_access(purpose: str) -> None:
    """Refuse at once, before any work, what will need a real Hub in offline mode (`HubAccessError`, exit 2): a run
    that pushes at its end must not train for hours first. A loopback Hub is not blocked (`_hub_errors`)."""
    if constants.is_offline_mode() and not is_loopback_endpoint():
        raise HubAccessError(f"Cannot {purpose}: offline mode is on (HF_HUB_OFFLINE=1) and publishing needs the Hub at "
                             f"{constants.ENDPOINT}; unset HF_HUB_OFFLINE, or push later with `hf-medvlm push`.")


@contextmanager
def _hub_errors(repo_id: str):
    """One sentence per failure; huggingface_hub already retried what can pass on retry. In offline mode a push to a
    real Hub is refused before any request; for a push to a loopback Hub, `HF_HUB_OFFLINE` (read into `constants` at
    import) is lifted meanwhile: every request of a push goes to `constants.ENDPOINT`, loopback here."""
    require_hub_access(f"push to {repo_id}")
    offline, constants.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE, False
    try:
        yield
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else None
        detail = f" (server: {err.server_message.strip().splitlines()[0]})" if err.server_message else ""
        if status in _REFUSALS:
            raise HubAccessError(f"Cannot push to {repo_id}: {_REFUSALS[status]}{detail}.") from err
        raise HubPushError(f"Pushing to {repo_id} failed: {constants.ENDPOINT} answered HTTP {status}{detail} after "
                           "huggingface_hub's retries; push again later (files already uploaded are not sent "
                           "twice).") from err
    except httpx2.TransportError as err:
        raise HubPushError(f"Pushing to {repo_id} failed: could not reach the Hub at {constants.ENDPOINT} "
                           f"({type(err).__name__}: {err}); check your network connection and HF_ENDPOINT, then "
                           "push again (files already uploaded are not sent twice).") from err
    finally:
        constants.HF_HUB_OFFLINE = offline


# ----------------------------------------------------------------------------------------------------- sources
def check_source(name: str, repo_type: str, *, what: str, revision: str | None = None) -> None:
    """Fail at once, in one sentence, when `name` (a dataset or model to read) is neither a local path nor a Hub repo
    that can be read: a path that does not exist, offline mode (HF_HUB_OFFLINE=1) without a cached copy, or a repo the
    Hub does not have or will not show (404, 401, gated). These are bad input (`ValueError`, exit 2); the loaders would
    spend their network retries on them first. An unreachable Hub is left to the loaders, which retry it.
    """
    import datasets

    builders = datasets.packaged_modules._PACKAGED_DATASETS_MODULES  # `json`, `parquet`, ... with data_files
    if Path(name).expanduser().exists() or (repo_type == "dataset" and name in builders):
        return
    if not _is_hub_id(name):
        raise FileNotFoundError(f"{what} {name!r}: no such local file or folder")
    if constants.is_offline_mode():
        hub_copy = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=name, repo_type=repo_type)
        arrow_copy = Path(datasets.config.HF_DATASETS_CACHE) / name.replace("/", "___")  # datasets' own cache
        if hub_copy.is_dir() or (repo_type == "dataset" and arrow_copy.is_dir()):
            return
        raise ValueError(f"{what} {name!r} is not a local folder and has no cached copy, and HF_HUB_OFFLINE=1 keeps "
                         "it from being downloaded; give a local path or unset HF_HUB_OFFLINE")
    try:
        HfApi().repo_info(name, repo_type=repo_type, revision=revision)
    except GatedRepoError:
        raise ValueError(f"{what} {name!r} is a gated {repo_type} on {constants.ENDPOINT}: accept its conditions on "
                         "its page and set HF_TOKEN to a token of that account") from None
    except RevisionNotFoundError:
        raise ValueError(f"{what} {name!r} has no revision {revision!r} on {constants.ENDPOINT}") from None
    except (RepositoryNotFoundError, HFValidationError):
        raise ValueError(f"{what} {name!r} is neither a local path nor a {repo_type} repo on {constants.ENDPOINT} "
                         "(or it is private and HF_TOKEN has no access to it)") from None
    except (HfHubHTTPError, httpx2.TransportError):
        return  # the Hub is down or unreachable: the loaders retry it and fail as a network error if it stays so


# ----------------------------------------------------------------------------------------------------- pushing
def _upload(folder: Path, repo_id: str, repo_type: str, *, revision: str | None, private: bool | None,
            token: str | None, commit_message: str | None, ignore: list[str], delete: list[str], card):
    """Create the repo and the `revision` branch if missing, upload `folder` (with the deletion of remote files that
    match `delete` and are not in it) in one commit, then `card` (bytes, a path, or None) as README.md."""
    message = commit_message or f"Upload {repo_type} from {folder.name} with hf_medvlm"
    with _hub_errors(repo_id):
        token = token or get_token()
        if not token:
            raise MissingTokenError("No Hugging Face token found: set the HF_TOKEN environment variable (or run "
                                    "`hf auth login`) to a token with write access, or pass token=...")
        api = HfApi(token=token)
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        if revision and revision != "main":
            api.create_branch(repo_id, branch=revision, repo_type=repo_type, exist_ok=True)
        # copies: upload_folder appends its defaults to the lists it is given
        info = api.upload_folder(repo_id=repo_id, repo_type=repo_type, folder_path=folder, revision=revision,
                                 commit_message=message, ignore_patterns=list(ignore),
                                 delete_patterns=list(delete) or None)
        if card is None:
            return info
        return api.upload_file(path_or_fileobj=card, path_in_repo="README.md", repo_id=repo_id, repo_type=repo_type,
                               revision=revision, commit_message=f"{message}: {repo_type} card")


def push_model(folder, repo_id: str, *, revision: str | None = None, private: bool | None = None,
               token: str | None = None, commit_message: str | None = None, card_kwargs: dict | None = None):
    """Upload a `save_pretrained` folder (weights, processor, chat template, generation config, remote code, card).

    A PEFT adapter folder (`adapter_config.json` + `adapter_model.safetensors`, from LoRA training) works too. The
    folder is validated first (`validate_model_folder`). Creates the repo and the `revision` branch if missing.
    Without a README.md in the folder a card is rendered from `card_kwargs` (keywords of `render_model_card`) and
    committed after the model. Returns the `CommitInfo` (a `str`: the commit URL) of the last commit, or of the
    current head when nothing changed.
    """
    folder = Path(folder)
    validate_model_folder(folder)
    has_card = (folder / "README.md").is_file()
    card = None if has_card else render_model_card(repo_id=repo_id, **(card_kwargs or {})).encode()
    return _upload(folder, repo_id, "model", revision=revision, private=private, token=token,
                   commit_message=commit_message, ignore=MODEL_IGNORE, delete=MODEL_WEIGHT_PATTERNS, card=card)


def push_dataset_folder(folder, repo_id: str, *, revision: str | None = None, private: bool | None = None,
                        token: str | None = None, commit_message: str | None = None):
    """Upload a Parquet dataset folder (several configs, README with `configs:` and a licence) as a dataset repo.

    The folder is validated first (`validate_dataset_folder`). The data go in one `upload_folder` call together
    with the deletion of stale remote shards of the listed configs; the card, which makes the configs visible, is
    committed after them. Returns the `CommitInfo` like `push_model`.
    """
    folder = Path(folder)
    stale = [p for p in validate_dataset_folder(folder) if not fnmatch("README.md", p)]
    return _upload(folder, repo_id, "dataset", revision=revision, private=private, token=token,
                   commit_message=commit_message, ignore=HIDDEN + ["README.md"], delete=stale,
                   card=folder / "README.md")
