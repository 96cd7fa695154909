"""Dataset cards: README.md with YAML metadata (licence, configs, dataset_info) and a body on licence, provenance,
schema, counts and how the data was built.

The writer owns `configs:` / `dataset_info:`; this module owns the rest and reads the counts back from that
metadata and the shards on disk, so the card always describes what is in the folder. A card without a licence is
refused, here and by `require_license` (which the push path calls).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined

__all__ = [
    "LLAVA_MED_LICENSE",
    "read_card",
    "write_card",
    "describe_features",
    "render_dataset_card",
    "write_dataset_card",
    "require_license",
]

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"
_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n?(.*)\Z", re.DOTALL)

# LLaVA-Med's data terms (its repository's data licence); every LLaVA-Med-derived card carries them.
LLAVA_MED_LICENSE = {
    "license": "cc-by-nc-4.0",
    "license_details": "The LLaVA-Med data are released under CC BY-NC 4.0 and may be used for research purposes "
                       "only; the figures themselves come from PubMed Central Open Access articles under their own "
                       "licences.",
    "research_only": True,
}


def read_card(folder: str | Path) -> tuple[dict, str]:
    """(YAML metadata, body) of `folder/README.md`; empty if there is none."""
    path = Path(folder) / "README.md"
    if not path.exists():
        return {}, ""
    text = path.read_text(encoding="utf-8")
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    metadata = yaml.safe_load(match.group(1)) or {}
    if not isinstance(metadata, dict):
        raise ValueError(f"{path}: the YAML header must be a mapping, got {type(metadata).__name__}")
    return metadata, match.group(2)


def write_card(folder: str | Path, metadata: dict, body: str) -> Path:
    path = Path(folder) / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    header = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True, width=1000)
    path.write_text(f"---\n{header}---\n{body}", encoding="utf-8")
    return path


def _describe(feature: dict) -> str:
    if "dtype" in feature:
        return feature["dtype"]
    if "list" in feature:
        inner = feature["list"]
        return f"list of {inner}" if isinstance(inner, str) else f"list of {_describe_struct(inner)}" \
            if isinstance(inner, list) else f"list of {_describe(inner)}"
    if "struct" in feature:
        return _describe_struct(feature["struct"])
    return next((str(v) for k, v in feature.items() if k != "name"), "?")


def _describe_struct(fields: list[dict]) -> str:
    return "{" + ", ".join(f"{f['name']}: {_describe(f)}" for f in fields) + "}"


def describe_features(yaml_features: list[dict]) -> list[tuple[str, str]]:
    """(column, readable type) for each top-level column of a `dataset_info.features` YAML list."""
    return [(f["name"], _describe(f)) for f in yaml_features]


def _counts_from_folder(folder: Path, metadata: dict) -> list[dict]:
    rows = []
    for info in metadata.get("dataset_info") or []:
        for split in info.get("splits") or []:
            shards = list((folder / info["config_name"]).glob(f"{split['name']}-*-of-*.parquet"))
            rows.append({"config_name": info["config_name"], "split": split["name"], "num_rows":
                         split["num_examples"], "num_bytes": split["num_bytes"], "num_shards": len(shards)})
    return rows


def require_license(metadata: dict, where: str = "dataset card") -> str:
    license_ = metadata.get("license")
    if not license_ or (license_ == "other" and not metadata.get("license_name")):
        raise ValueError(f"{where} has no licence: set `license` (and `license_name` when it is 'other') first")
    return license_


def render_dataset_card(
    metadata: dict, *, pretty_name: str, summary: str, license_details: str, provenance: list[str],
    how_built: str, counts: list[dict], research_only: bool = False, skipped: dict | None = None,
    notes: list[str] | None = None, repo_id: str | None = None,
) -> str:
    """The card body (Markdown) from the README metadata and the build description."""
    from hf_medvlm import __version__

    env = Environment(loader=FileSystemLoader(TEMPLATE_DIR), undefined=StrictUndefined, keep_trailing_newline=True)
    infos = metadata.get("dataset_info") or []
    schema = {info["config_name"]: describe_features(info.get("features") or []) for info in infos}
    configs = metadata.get("configs") or [{"config_name": "default"}]
    return env.get_template("dataset_card.md.jinja").render(
        pretty_name=pretty_name, summary=summary, license=metadata["license"],
        license_name=metadata.get("license_name"), license_details=license_details, research_only=research_only,
        provenance=provenance, how_built=how_built, counts=counts, skipped=skipped or {}, schema=schema,
        notes=notes or [], repo_id=repo_id, first_config=configs[0]["config_name"], version=__version__,
    )


def write_dataset_card(
    folder: str | Path, *, license: str, pretty_name: str, summary: str, provenance: list[str], how_built: str,
    license_details: str = "", license_name: str | None = None, research_only: bool = False,
    tags: list[str] | None = None, task_categories: list[str] | None = None, language: list[str] | None = None,
    skipped: dict | None = None, notes: list[str] | None = None, repo_id: str | None = None,
) -> Path:
    """Write README.md for a folder made by `write_dataset_folder`, keeping its `configs:` and `dataset_info:`."""
    folder = Path(folder)
    metadata, _ = read_card(folder)
    metadata.update({"license": license, "pretty_name": pretty_name})
    for key, value in (("license_name", license_name), ("tags", tags), ("task_categories", task_categories),
                       ("language", language)):
        if value:
            metadata[key] = value
    require_license(metadata, where=f"dataset card for {folder}")
    if not provenance:
        raise ValueError(f"dataset card for {folder} has no provenance: name where the raw files come from")
    body = render_dataset_card(
        metadata, pretty_name=pretty_name, summary=summary, license_details=license_details,
        provenance=provenance, how_built=how_built, counts=_counts_from_folder(folder, metadata),
        research_only=research_only, skipped=skipped, notes=notes, repo_id=repo_id,
    )
    ordered = {k: metadata[k] for k in ("license", "license_name", "pretty_name", "language", "tags",
                                          "task_categories") if k in metadata}
    ordered.update({k: v for k, v in metadata.items() if k not in ordered})
    return write_card(folder, ordered, body)
