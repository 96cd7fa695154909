"""Raw release files -> Hub-ready Parquet folder (+ dataset card): the work behind `hf-medvlm prepare <source>`.

The same code runs behind every `dataset_scripts/<source>.py`. Records are streamed (JSON arrays are decoded
incrementally, CSV and Parquet row by row), converted by the pure functions of `hf_medvlm.data.converters`,
validated, and written in shards; bad records raise or, with `--on_error skip`, are counted per reason.
"""

from __future__ import annotations

import codecs
import csv
import glob
import itertools
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..files import atomic_write_text
from ..outcome import check_failure_rate, failure_rate_field
from . import converters as cv
from .card import LLAVA_MED_LICENSE, write_dataset_card
from .loading import iter_json_lines
from .schema import (
    EVAL_FEATURES, QA50_FEATURES, TRAINING_FEATURES, RecordError, SkipCounter, check_row_types, iter_valid,
    validate_eval_record, validate_training_record,
)
from .writer import DEFAULT_ROWS_PER_SHARD, write_dataset_folder

__all__ = ["PrepareArguments", "SourceSpec", "SOURCES", "iter_records", "prepare"]


# ------------------------------------------------------------------------------------------------ readers


def _iter_json_array(path: Path, chunk_size: int = 1 << 20) -> Iterator[dict]:
    """Decode a top-level JSON array one element at a time (release files are up to 700 MB)."""
    decoder = json.JSONDecoder()
    with path.open("r", encoding="utf-8") as handle:
        buffer, position, started = handle.read(chunk_size), 0, False
        while True:
            while position < len(buffer) and buffer[position] in " \t\r\n,":
                position += 1
            if not started and position < len(buffer):
                if buffer[position] != "[":
                    raise ValueError(f"{path}: expected a JSON array of records")
                started, position = True, position + 1
                continue
            if position < len(buffer) and buffer[position] == "]":
                return
            try:
                item, end = decoder.raw_decode(buffer, position)
            except json.JSONDecodeError:
                more = handle.read(chunk_size)
                if not more:
                    raise ValueError(f"{path}: malformed or truncated JSON near character {position}") from None
                buffer, position = buffer[position:] + more, 0
                continue
            yield item
            buffer, position = (buffer[end:], 0) if end > chunk_size else (buffer, end)


def _iter_csv(path: Path) -> Iterator[dict]:
    with path.open("r", encoding="utf-8", newline="") as handle:
        yield from csv.DictReader(handle)


def _iter_parquet(path: Path) -> Iterator[dict]:
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=64):
        yield from batch.to_pylist()


def _raw_files(path: str | Path) -> list[Path]:
    """The file, or the sorted matches of a glob pattern (a release sharded as `data/test-0000*-of-00003.parquet`)."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(Path(p) for p in glob.glob(str(path)) if Path(p).is_file())
    if not files:
        pattern = any(c in str(path) for c in "*?[")
        raise FileNotFoundError(f"no raw file matches {path}" if pattern else f"raw file {path} does not exist")
    return files


def iter_records(path: str | Path) -> Iterator[dict]:
    """Raw records of a `.json` (array), `.jsonl`, `.csv` or `.parquet` file, or of every file a glob pattern matches,
    each with its position as `_index` (counted across the files)."""
    readers = {".json": _iter_json_array, ".jsonl": lambda file: (value for _, value in iter_json_lines(file)),
               ".csv": _iter_csv, ".parquet": _iter_parquet}
    records = []
    for file in _raw_files(path):
        if file.suffix not in readers:
            raise ValueError(f"{file}: unsupported raw file type {file.suffix!r}; expected {sorted(readers)}")
        records.append((file, readers[file.suffix](file)))
    index = 0
    for file, reader in records:
        try:
            for record in reader:
                if not isinstance(record, dict):
                    raise ValueError(f"{file}: record {index} is a {type(record).__name__}, not an object")
                record.setdefault("_index", index)
                index += 1
                yield record
        except UnicodeDecodeError as err:
            raise _not_utf8(file, err) from None


def _not_utf8(path: Path, err: UnicodeDecodeError) -> ValueError:
    """The codec error names neither the file nor a position in it (readers decode in chunks): find the first byte
    that is not UTF-8 by decoding the file again as a stream, and name its offset and line."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, newlines = 0, 0  # bytes and line breaks before the current chunk
    with path.open("rb") as handle:
        for chunk in itertools.chain(iter(lambda: handle.read(1 << 20), b""), [b""]):  # b"": end of file
            pending = len(decoder.getstate()[0])  # the start of a character cut by the previous chunk
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as bad:
                data = bad.object  # pending bytes + chunk
                line = newlines + data[: bad.start].count(b"\n") + 1
                at = offset - pending + bad.start
                return ValueError(
                    f"{path}: not UTF-8 text: byte 0x{data[bad.start]:02x} at byte offset {at} (line {line}): "
                    f"{bad.reason}; release files are UTF-8, so convert this one first "
                    "(e.g. `iconv -f latin1 -t utf-8`)")
            offset, newlines = offset + len(chunk), newlines + chunk.count(b"\n")
    return ValueError(f"{path}: not UTF-8 text ({err.reason})")


# ------------------------------------------------------------------------------------------------ sources


@dataclass(frozen=True)
class SourceSpec:
    """How one source is converted and described."""

    convert: Callable  # (raw, resolver, **config_kwargs) -> row | None
    features: object
    # config name -> extra keyword arguments for `convert`; `as_training: True` marks a benchmark's fine-tuning
    # config, written in the training schema (one question/answer turn per sample) from its train split.
    configs: dict[str, dict]
    license: dict
    provenance: str
    summary: str


_APACHE = {"license": "apache-2.0", "license_details": "As stated on the source's Hub dataset card."}

SOURCES: dict[str, SourceSpec] = {
    "llava_med_alignment": SourceSpec(
        cv.convert_llava_med_alignment, TRAINING_FEATURES, {"500k": {}}, LLAVA_MED_LICENSE,
        "microsoft/LLaVA-Med data/alignment/llava_med_alignment_500k.json; images from PMC OA via "
        "llava_med_image_urls.jsonl (`hf-medvlm fetch-images`)",
        "LLaVA-Med stage-1 (concept alignment) figure-caption pairs.",
    ),
    "llava_med_instruct": SourceSpec(
        cv.convert_llava_med, TRAINING_FEATURES, {"10k": {}, "60k": {}, "60k_inline_mention": {}}, LLAVA_MED_LICENSE,
        "microsoft/LLaVA-Med data/instruct/llava_med_instruct_{10k,60k,60k_inline_mention}.json; images from PMC OA "
        "via llava_med_image_urls.jsonl", "LLaVA-Med stage-2 GPT-4 generated instruction data.",
    ),
    "llava_med_qa50": SourceSpec(
        cv.convert_llava_med_qa50, QA50_FEATURES, {"eval": {}}, LLAVA_MED_LICENSE,
        "microsoft/LLaVA-Med data/eval/llava_med_eval_qa50_qa.jsonl (images are not in the public URL list)",
        "LLaVA-Med's 193-question chat evaluation set with GPT-4 reference answers.",
    ),
    "pubmedvision": SourceSpec(
        cv.convert_pubmedvision, TRAINING_FEATURES,
        {"alignment_vqa": {}, "instruction_tuning_vqa": {},
         "zh_alignment_vqa": {"conversation_key": "Alignment_VQA_conversations"},
         "zh_instruction_tuning_vqa": {"conversation_key": "Instruction-Tuning_VQA_conversations"}},
        _APACHE, "FreedomIntelligence/PubMedVision PubMedVision_{Alignment_VQA,InstructionTuning_VQA,"
        "Chinese}.json; images from images_0..19.zip unzipped into images/",
        "PubMedVision GPT-4V reformatted PubMed image-text VQA (1 to 29 images per sample).",
    ),
    "biomed_vital": SourceSpec(
        cv.convert_biomed_vital, TRAINING_FEATURES, {"60k": {}, "80k": {}, "150k": {}, "210k": {}},
        dict(LLAVA_MED_LICENSE, license_details="Licence statements conflict (Hub card apache-2.0, project site "
             "CC BY-NC 4.0) and the 150K/210K files contain LLaVA-Med data (CC BY-NC 4.0), so the stricter "
             "CC BY-NC 4.0, research use only, is applied."),
        "mao1207/BioMed-VITAL-instructions BioMed-VITAL-instructions-{60K,80K,150K,210K}.json; images from PMC OA "
        "via PMC_image_urls.jsonl (same as LLaVA-Med's list)", "BioMed-VITAL clinician-aligned instruction data.",
    ),
    "vqa_rad": SourceSpec(
        cv.convert_vqa_rad, EVAL_FEATURES, {"eval": {}, "train_sft": {"as_training": True}},
        {"license": "cc0-1.0", "license_details": "VQA-RAD is released under CC0 1.0."},
        "VQA-RAD public JSON (`VQA_RAD Dataset Public.json` + image folder) or flaviagiammarino/vqa-rad parquet",
        "VQA-RAD radiology visual question answering.",
    ),
    "slake": SourceSpec(
        cv.convert_slake, EVAL_FEATURES,
        {"eval": {"language": "en"}, "train_sft": {"language": "en", "as_training": True}},
        {"license": "cc-by-4.0", "license_details": "SLAKE is released under CC BY 4.0."},
        "BoKelvin/SLAKE {train,validate,test}.json + imgs.zip (English questions only)",
        "SLAKE bilingual medical VQA, English subset.",
    ),
    "path_vqa": SourceSpec(
        cv.convert_path_vqa, EVAL_FEATURES, {"eval": {}, "train_sft": {"as_training": True}},
        {"license": "mit", "license_details": "As stated on flaviagiammarino/path-vqa."},
        "flaviagiammarino/path-vqa parquet files", "PathVQA pathology VQA; closed = yes/no questions.",
    ),
    "pmc_vqa": SourceSpec(
        cv.convert_pmc_vqa, EVAL_FEATURES, {"eval": {}},
        {"license": "other", "license_name": "pmc-vqa",
         "license_details": "See the upstream card of xmcmic/PMC-VQA; figures come from PubMed Central OA articles "
                            "under their own licences. Check the terms before redistributing."},
        "xmcmic/PMC-VQA {train,test,test_clean}.csv + images.zip", "PMC-VQA 4-way multiple-choice medical VQA.",
    ),
}


# ------------------------------------------------------------------------------------------------- preparing


@dataclass
class PrepareArguments:
    input_path: str = field(metadata={"help": "Raw release file (.json, .jsonl, .csv or .parquet), a quoted glob of "
                                              "its shards ('path-vqa/data/test-*.parquet'), or for a training source "
                                              "the data/*.jsonl that `hf-medvlm generate` wrote."})
    output_dir: str = field(metadata={"help": "Folder to write `{config}/{split}-XXXXX-of-XXXXX.parquet` and README.md into."})
    config_name: str | None = field(default=None, metadata={"help": "Config (subset) to write; default: the source's first."})
    split: str | None = field(default=None, metadata={"help": "Split name; default: train for training sources, test for benchmarks."})
    image_root: str | None = field(default=None, metadata={"help": "Folder image paths are relative to; default: the raw file's folder."})
    raw_format: str = field(default="native", metadata={"help": "vqa_rad/slake/path_vqa only: 'llava_med' reads LLaVA-Med's VQA files (train.json/test.json with answer_type and conversations) instead of the dataset's own release.", "choices": ["native", "llava_med"]})
    on_error: str = field(default="raise", metadata={"help": "What to do with a bad record: raise, or skip and count it by reason.", "choices": ["raise", "skip"]})
    verify_images: bool = field(default=True, metadata={"help": "Fully decode every image and treat failures as bad records."})
    rows_per_shard: int = field(default=DEFAULT_ROWS_PER_SHARD, metadata={"help": "Rows per Parquet shard."})
    limit: int | None = field(default=None, metadata={"help": "Convert only the first N raw records (for a quick look)."})
    default_config: bool = field(default=False, metadata={"help": "Mark this config as the folder's default in README `configs:`."})
    push_to_hub: bool = field(default=False, metadata={"help": "Upload the folder with hf_medvlm.hub.push_dataset_folder."})
    hub_repo_id: str | None = field(default=None, metadata={"help": "Hub dataset repo for --push_to_hub."})
    hub_private: bool | None = field(default=None, metadata={"help": "Create the Hub repo as private."})
    # With --on_error skip, release files lose a few records to images PMC no longer serves; a tenth is a wrong
    # --image_root or an incomplete fetch-images run.
    max_failure_rate: float = failure_rate_field(0.1, "raw records (skipped as bad under --on_error skip)")
    text_only: bool = field(default=False, metadata={"help": "llava_med_qa50 only: write the questions without images on purpose (the qa50 images are not public); such a set can be judged from an existing answers file, not used to generate answers. Without it a missing image is a bad record."})


def _converter(spec: SourceSpec, args: PrepareArguments, config: str, split: str, features) -> Callable:
    resolver = cv.ImageResolver(args.image_root or Path(args.input_path).parent, verify=args.verify_images)
    # `generate` writes image paths relative to its output file, pointing back at the figures it read (`../..`):
    # without --image_root those are followed; a release's records stay confined to their folder.
    handoff = resolver if args.image_root else cv.ImageResolver(resolver.root, verify=args.verify_images, confine=False)
    kwargs, convert_one = dict(spec.configs.get(config, {})), spec.convert
    as_training = kwargs.pop("as_training", False)
    if args.raw_format == "llava_med":
        if spec.features is not EVAL_FEATURES or spec.convert is cv.convert_pmc_vqa:
            raise ValueError("--raw_format llava_med applies to vqa_rad, slake and path_vqa only")
        kwargs, convert_one = {"source": next(k for k, v in SOURCES.items() if v is spec)}, cv.convert_llava_vqa
    elif spec.convert is cv.convert_vqa_rad:
        kwargs["split"] = split
    if args.text_only:
        if spec.convert is not cv.convert_llava_med_qa50:
            raise ValueError("--text_only applies to llava_med_qa50 only; every other source needs its images")
        kwargs["text_only"] = True

    def convert(raw: dict):
        try:
            if "messages" in raw and spec.features is TRAINING_FEATURES:  # a row `hf-medvlm generate` wrote
                convert.generated += 1
                row = cv.convert_generated(raw, handoff)
            else:
                row = convert_one(raw, resolver, **kwargs)
            if row is None:
                return None
            if spec.features is not QA50_FEATURES:  # qa50 questions have no answer turn to check
                row = (validate_training_record if spec.features is TRAINING_FEATURES else validate_eval_record)(row)
            row = validate_training_record(cv.vqa_to_training_row(row)) if as_training else row
            return check_row_types(row, features)
        except RecordError as err:  # name the file and the record's position, whatever the converter said
            raise RecordError(err.reason, f"{args.input_path}, entry {raw.get('_index')}: {err}") from None

    convert.generated = 0
    return convert


def _record_skips(output_dir: Path, config: str, split: str, skipped: dict, note: str | None = None) -> dict:
    """Keep skip counts of every config/split built into this folder in `build_report.json` (the card lists them),
    and under `_notes` what else a reader must know about a split (e.g. rows written without images)."""
    path = output_dir / "build_report.json"
    report = json.loads(path.read_text()) if path.exists() else {}
    key = f"{config}/{split}"
    report[key] = skipped
    report["_notes"] = {part: text for part, text in {**report.get("_notes", {}), key: note}.items() if text}
    atomic_write_text(path, json.dumps(report, indent=1, sort_keys=True))
    return report


def _note(counts: dict) -> str | None:
    """What a reader of the card must know about a split whose rows are not the release's as they are."""
    if counts["without_image"]:
        return (f"{counts['without_image']} rows written without images on purpose (`--text_only`): fit for the "
                "text-only judge of `hf-medvlm eval --task chat --answers_file ...`, not for generating answers.")
    if counts["generated"]:
        return (f"{counts['generated']} rows were generated by `hf-medvlm generate` (training-schema JSONL), not "
                "taken from the release: their licence is that of your input figures and your LLM provider's terms, "
                "not the release's.")
    return None


GENERATED_LICENSE = {"license": "other", "license_name": "generated-data", "license_details": (
    "Generated with `hf-medvlm generate` from figures you supplied: the figures' licences and the LLM provider's terms "
    "apply. Set the licence that fits before publishing.")}


def _card(output_dir: Path, source: str, spec: SourceSpec, report: dict, repo_id: str | None,
          generated: bool = False) -> None:
    license_ = {**spec.license, **GENERATED_LICENSE} if generated else spec.license  # research use stays the source's
    skipped = {k: v for k, v in report.items() if not k.startswith("_")}
    write_dataset_card(
        output_dir, **license_, pretty_name=source, summary=spec.summary, provenance=[spec.provenance],
        skipped=skipped, repo_id=repo_id, tags=["medical", source],
        notes=[f"`{part}`: {note}" for part, note in sorted(report.get("_notes", {}).items())],
        how_built=f"`hf-medvlm prepare {source}` (or `dataset_scripts/{source}.py`) from hf_medvlm: records streamed "
                  "through `hf_medvlm.data.converters`, validated, images embedded as bytes.",
        task_categories=["visual-question-answering" if spec.features is EVAL_FEATURES else "image-text-to-text"],
    )


def _is_generated(path: str) -> bool:
    """Whether the file holds training-schema rows (`hf-medvlm generate` output) rather than a release's records."""
    first = next(iter_records(path), {}) if Path(path).is_file() else {}  # a glob names release shards
    return "messages" in first


def prepare(source: str, args: PrepareArguments) -> dict:
    """Convert, validate and write one config/split of `source`; returns the writer's counts plus `skipped`."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of {sorted(SOURCES)}")
    spec = SOURCES[source]
    check_failure_rate(args.max_failure_rate)
    config = args.config_name or next(iter(spec.configs))
    if config not in spec.configs and not (spec.features is TRAINING_FEATURES and _is_generated(args.input_path)):
        raise ValueError(f"source {source!r} has no config {config!r}; expected one of {sorted(spec.configs)} (any "
                         "name is fine for the output of `hf-medvlm generate`)")
    features = TRAINING_FEATURES if spec.configs.get(config, {}).get("as_training") else spec.features
    split = args.split or ("train" if features is TRAINING_FEATURES else "test")  # benchmarks ship a test split
    counter = SkipCounter()
    records = itertools.islice(iter_records(args.input_path), args.limit)
    convert = _converter(spec, args, config, split, features)
    rows = iter_valid(records, convert, on_error=args.on_error, counter=counter)
    try:
        counts = write_dataset_folder(args.output_dir, config, split, rows, features,
                                      rows_per_shard=args.rows_per_shard, default=args.default_config)
    except ValueError as err:
        raise ValueError(f"{err}; {counter.summary()}") from err
    counts["skipped"] = counter.as_dict()
    counts["without_image"] = counts["num_rows"] if args.text_only else 0
    counts["generated"] = convert.generated
    report = _record_skips(Path(args.output_dir), config, split, counts["skipped"], _note(counts))
    _card(Path(args.output_dir), source, spec, report, args.hub_repo_id, generated=bool(convert.generated))
    print(f"{source}/{config}/{split}: wrote {counts['num_rows']} rows in {counts['num_shards']} shard(s)"
          f"{' without images (--text_only)' if args.text_only else ''}; {counter.summary()}", file=sys.stderr)
    return counts
