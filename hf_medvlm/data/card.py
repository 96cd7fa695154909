"""Dataset cards: README.md with YAML metadata (licence, configs, dataset_info) and a body on licence, provenance,
schema, counts and how the data was built.

The writer owns `configs:` / `dataset_info:`; this module owns the rest and reads the counts back from that
metadata and the shards on disk, so the card always describes what is in the folder. Cards are read, rendered and
written with huggingface_hub's `DatasetCard`; a card without a licence is refused, here and by `require_license`
(which the push path calls).
"""

from __future__ import annotations

from pathlib import Path

from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

from ..files import atomic_write_text

__all__ = ["LLAVA_MED_LICENSE", "load_card", "write_dataset_card", "require_license"]

TEMPLATE = Path(__file__).resolve().parent.parent / "templates" / "dataset_card.md.jinja"

# LLaVA-Med's data terms (its repository's data licence); every LLaVA-Med-derived card carries them.
LLAVA_MED_LICENSE = {
    "license": "cc-by-nc-4.0",
    "license_details": "The LLaVA-Med data are released under CC BY-NC 4.0 and may be used for research purposes "
                       "only; the figures themselves come from PubMed Central Open Access articles under their own "
                       "licences.",
    "research_only": True,
}


def load_card(folder: str | Path) -> DatasetCard:
    """`folder/README.md` as a `DatasetCard`, or an empty card (no metadata, no body) if there is none."""
    path = Path(folder) / "README.md"
    return DatasetCard.load(path) if path.is_file() else DatasetCard("---\n\n---\n")


def _describe(feature: str | list | dict) -> str:
    """A readable type for a feature of `Features._to_yaml_list()`: a dtype, a struct's field list or a dict."""
    if isinstance(feature, str):
        return feature
    if isinstance(feature, list):
        return "{" + ", ".join(f"{f['name']}: {_describe(f)}" for f in feature) + "}"
    if "dtype" in feature:
        return feature["dtype"]
    if "list" in feature:
        return f"list of {_describe(feature['list'])}"
    if "struct" in feature:
        return _describe(feature["struct"])
    return next((str(v) for k, v in feature.items() if k != "name"), "?")


def _counts_and_schema(folder: Path, data: DatasetCardData) -> tuple[list[dict], dict]:
    """Rows per config/split (with the shards on disk) and readable column types per config."""
    counts, schema = [], {}
    for name, info in DatasetInfosDict.from_dataset_card_data(data).items():
        schema[name] = [(f["name"], _describe(f)) for f in info.features._to_yaml_list()] if info.features else []
        for split in (info.splits or {}).values():
            shards = list((folder / name).glob(f"{split.name}-*-of-*.parquet"))
            counts.append({"config_name": name, "split": split.name, "num_rows": split.num_examples,
                           "num_bytes": split.num_bytes, "num_shards": len(shards)})
    return counts, schema


def require_license(metadata: dict, where: str = "dataset card") -> str:
    license_ = metadata.get("license")
    if not license_ or (license_ == "other" and not metadata.get("license_name")):
        raise ValueError(f"{where} has no licence: set `license` (and `license_name` when it is 'other') first")
    return license_


def write_dataset_card(
    folder: str | Path, *, license: str, pretty_name: str, summary: str, provenance: list[str], how_built: str,
    license_details: str = "", license_name: str | None = None, research_only: bool = False,
    tags: list[str] | None = None, task_categories: list[str] | None = None, language: list[str] | None = None,
    skipped: dict | None = None, notes: list[str] | None = None, repo_id: str | None = None,
) -> Path:
    """Write README.md for a folder made by `write_dataset_folder`, keeping its `configs:` and `dataset_info:`.

    `skipped` maps `"config/split"` to `{reason: count}` for the records left out while building.
    """
    from hf_medvlm import __version__

    folder = Path(folder)
    data = load_card(folder).data
    data.license, data.pretty_name = license, pretty_name
    for key, value in (("license_name", license_name), ("tags", tags), ("task_categories", task_categories),
                       ("language", language)):
        if value:
            data[key] = value
    require_license(data.to_dict(), where=f"dataset card for {folder}")
    if not provenance:
        raise ValueError(f"dataset card for {folder} has no provenance: name where the raw files come from")
    counts, schema = _counts_and_schema(folder, data)
    configs = MetadataConfigs.from_dataset_card_data(data)
    card = DatasetCard.from_template(
        data, template_path=str(TEMPLATE), pretty_name=pretty_name, summary=summary, license=license,
        license_name=license_name, license_details=license_details, research_only=research_only,
        provenance=provenance, how_built=how_built, counts=counts, skipped=skipped or {}, schema=schema,
        notes=notes or [], repo_id=repo_id, version=__version__,
        first_config=configs.get_default_config_name() or next(iter(configs), "default"),
    )
    atomic_write_text(folder / "README.md", str(card))  # never a half-written card, whose YAML would not load
    return folder / "README.md"
