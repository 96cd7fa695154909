"""The PubMedVision data filters (Chen et al., 2024, Appendix B), run by `hf-medvlm filter <step>`.

- ``pubmedvision``: text (>= 5 unique medical-lexicon terms in the caption; `--terms_in caption_and_mentions` also
  counts inline mentions), image size (>= 336x336), an optional medical/non-medical image classifier, then
  caption-embedding near-duplicate removal. Writes ``kept.jsonl`` (figure records, ready for ``hf-medvlm generate``),
  ``dropped.jsonl`` (each with its stage and reason) and ``report.json`` with kept/dropped counts per stage.
- ``train-classifier``: fit the classifier head on a frozen CLIP vision encoder from labelled images.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..outcome import check_failure_rate, failure_rate_field

__all__ = ["FilterArguments", "TrainClassifierArguments", "filter_records", "train_classifier"]

TERM_SOURCES = ("caption", "caption_and_mentions")


@dataclass
class FilterArguments:
    input: str = field(metadata={"help": "Figure records JSONL (id, images, caption, mentions, ...)."})
    output_dir: str = field(metadata={"help": "Folder for kept.jsonl, dropped.jsonl and report.json."})
    image_root: str | None = field(default=None, metadata={"help": "Folder relative image paths resolve against."})
    lexicon: str | None = field(default=None, metadata={"help": "Medical lexicon file, one term per line (default: "
                                                                "the small packaged one; see docs for UMLS)."})
    min_terms: int = field(default=5, metadata={"help": "Minimum unique lexicon terms in the text `terms_in` names."})
    terms_in: str = field(default="caption", metadata={
        "help": "Where medical terms are counted: 'caption' (the paper, Appendix B: fewer than five medical terms in "
                "the image caption -> dropped) or 'caption_and_mentions' (caption plus inline mentions, more lenient).",
        "choices": list(TERM_SOURCES)})
    min_width: int = field(default=336, metadata={"help": "Minimum image width in pixels."})
    min_height: int = field(default=336, metadata={"help": "Minimum image height in pixels."})
    classifier: str | None = field(default=None, metadata={"help": "Folder of a trained medical image classifier "
                                                                   "(from `filter train-classifier`); skipped if unset."})
    classifier_threshold: float | None = field(default=None, metadata={"help": "Keep images whose medical "
                                                                               "probability is at least this (default: "
                                                                               "the classifier's own threshold)."})
    dedup_model: str | None = field(default="sentence-transformers/all-mpnet-base-v2",
                                    metadata={"help": "sentence-transformers model for caption dedup; 'none' skips."})
    dedup_threshold: float = field(default=0.9, metadata={"help": "Drop a caption whose similarity to an earlier "
                                                                  "kept one exceeds this (cosine by default; paper: raw "
                                                                  "dot product 480 with --dedup_normalize false)."})
    dedup_normalize: bool = field(default=True, metadata={"help": "L2-normalise embeddings (cosine similarity)."})
    dedup_nprobe: int = field(default=8, metadata={"help": "Cells searched per caption above 20,000 captions."})
    # Records the filters drop are the point of the command; a record whose image is missing or unreadable is not
    # filtered but lost, and a tenth of them lost means the images are not where the records say.
    max_failure_rate: float = failure_rate_field(0.1, "input records (those whose image is missing or unreadable)")


@dataclass
class TrainClassifierArguments:
    labels: str = field(metadata={"help": "JSONL of {\"image\": path, \"label\": 1 (medical) | 0 (non-medical)}."})
    vision_encoder: str = field(metadata={"help": "CLIP vision encoder to freeze (path or Hub id)."})
    output_dir: str = field(metadata={"help": "Where to save the classifier and its image processor."})
    threshold: float = field(default=0.5, metadata={"help": "Decision threshold stored in the config."})
    epochs: int = field(default=200, metadata={"help": "Full-batch epochs of the logistic head."})


def _apply_stage(report: dict, dropped_rows: list, stage: str, records: list, verdicts: list) -> list:
    """Keep the records whose verdict is None; the others go to `dropped_rows` with the stage and the verdict's
    reason. Returns the kept records."""
    kept = []
    for record, verdict in zip(records, verdicts):
        if verdict is None:
            kept.append(record)
        else:
            dropped_rows.append({**asdict(record), "stage": stage, **verdict})
    report["stages"].append({"stage": stage, "in": len(records), "kept": len(kept),
                             "dropped": len(records) - len(kept)})
    return kept


def _text_verdicts(records, args) -> list:
    from .filtering import count_medical_terms, load_lexicon

    if args.terms_in not in TERM_SOURCES:
        raise ValueError(f"terms_in must be one of {TERM_SOURCES}, got {args.terms_in!r}")
    lexicon = load_lexicon(args.lexicon)
    # The caption (the paper), or caption + inline mentions.
    texts = [" ".join([r.caption, *(r.mentions if args.terms_in == "caption_and_mentions" else [])]) for r in records]
    counts = [count_medical_terms(text, lexicon) for text in texts]
    return [None if n >= args.min_terms else {"reason": f"{n} < {args.min_terms} terms in {args.terms_in}"}
            for n in counts]


def _size_verdict(record, args) -> dict | None:
    from PIL import Image

    from .filtering import image_size_ok

    if not record.images:
        return {"reason": "no image", "failed": False}
    for path in record.images:
        # A missing or unreadable image is lost, not filtered: counted against --max_failure_rate.
        if not Path(path).is_file():
            return {"reason": f"missing image {path}", "failed": True}
        try:
            with Image.open(path) as image:
                size = image.size
        except (OSError, ValueError) as err:
            return {"reason": f"unreadable image {path}: {err}", "failed": True}
        if not image_size_ok(size, args.min_width, args.min_height):
            return {"reason": f"image {Path(path).name} is {size[0]}x{size[1]}", "failed": False}
    return None


def _classifier_verdicts(records, args) -> list:
    from PIL import Image
    from transformers import AutoImageProcessor

    from .image_classifier import MedicalImageClassifier

    model = MedicalImageClassifier.from_pretrained(args.classifier).eval()
    processor = AutoImageProcessor.from_pretrained(args.classifier)
    threshold = args.classifier_threshold if args.classifier_threshold is not None else model.config.threshold
    verdicts = []
    for record in records:
        images = [Image.open(p).convert("RGB") for p in record.images]
        low = float(model.predict_proba(processor(images=images, return_tensors="pt")["pixel_values"]).min())
        verdicts.append(None if low >= threshold else {"reason": f"p(medical)={low:.3f}"})
    return verdicts


def _dedup_verdicts(records, args) -> list:
    from .filtering import embed_captions, find_near_duplicates

    if not records:
        return []
    embeddings = embed_captions([r.caption for r in records], args.dedup_model, normalize=args.dedup_normalize)
    duplicate_of = find_near_duplicates(embeddings, args.dedup_threshold, nprobe=args.dedup_nprobe,
                                        show_progress_bar=True)
    return [None if dup < 0 else {"reason": f"near-duplicate of {records[dup].id}"} for dup in duplicate_of]


def filter_records(args: FilterArguments) -> dict:
    """Run the stages in the paper's order; returns the report (also written to ``report.json``)."""
    from ..files import atomic_write_text
    from .records import read_figure_records, write_jsonl

    check_failure_rate(args.max_failure_rate)
    records = read_figure_records(args.input, args.image_root)
    report, dropped_rows = {"input": len(records), "stages": []}, []
    records = _apply_stage(report, dropped_rows, "medical_terms", records, _text_verdicts(records, args))
    records = _apply_stage(report, dropped_rows, "resolution", records, [_size_verdict(r, args) for r in records])
    if args.classifier:
        records = _apply_stage(report, dropped_rows, "medical_image", records, _classifier_verdicts(records, args))
    if args.dedup_model and args.dedup_model.lower() != "none":
        records = _apply_stage(report, dropped_rows, "dedup", records, _dedup_verdicts(records, args))
    out = Path(args.output_dir)
    # report.json, written last, marks a finished run: an earlier run's must not stand beside this run's files.
    (out / "report.json").unlink(missing_ok=True)
    report["kept"] = write_jsonl(out / "kept.jsonl", (asdict(r) for r in records))
    write_jsonl(out / "dropped.jsonl", dropped_rows)
    report["failed"] = {"count": sum(row.get("failed", False) for row in dropped_rows), "of": report["input"]}
    atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    return report


def train_classifier(args: TrainClassifierArguments) -> dict:
    from transformers import AutoImageProcessor

    from ..data.loading import iter_json_lines
    from .image_classifier import MedicalImageClassifier, image_features, train_head

    path = Path(args.labels)
    if not path.is_file():
        raise FileNotFoundError(f"labels file {path} does not exist")
    rows = [row for _, row in iter_json_lines(path)]
    images = [path.parent / row["image"] for row in rows]  # opened one batch at a time
    labels = [int(row["label"]) for row in rows]
    model = MedicalImageClassifier.from_vision_encoder(args.vision_encoder, threshold=args.threshold)
    processor = AutoImageProcessor.from_pretrained(args.vision_encoder)
    loss = train_head(model, image_features(model, processor, images), labels, epochs=args.epochs)
    model.save_pretrained(args.output_dir)
    processor.save_pretrained(args.output_dir)
    return {"images": len(images), "medical": sum(labels), "final_loss": round(loss, 4), "saved_to": args.output_dir}
