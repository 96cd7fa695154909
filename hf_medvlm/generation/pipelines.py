"""Data-generation methods run end to end against an OpenAI-compatible endpoint or a local transformers model,
resumably, writing training-schema rows (the work behind `hf-medvlm generate <method>`).

Methods: ``llava-med`` (self-instruct, text-only), ``pubmedvision`` (reformatting), ``biomed-vital`` (generation
with demonstrations), ``rate`` (BioMed-VITAL model-based rating), ``select-demos`` (BioMed-VITAL demonstration
candidates). Replies go to ``<output_dir>/responses.jsonl`` keyed by record id: rerunning the same command after a
crash sends only the requests that have no reply yet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..outcome import failure_rate_field

__all__ = ["METHODS", "GenerateArguments", "chat_backend", "run_method", "select_demos"]

METHODS = ("llava-med", "pubmedvision", "biomed-vital", "rate", "select-demos")


@dataclass
class GenerateArguments:
    input: str = field(metadata={"help": "Figure records JSONL (id, images, caption, mentions, ...); for `rate`, "
                                         "the conversations JSONL written by `generate biomed-vital`."})
    output_dir: str = field(metadata={"help": "Folder for responses.jsonl, data/*.jsonl and report.json."})
    image_root: str | None = field(default=None, metadata={"help": "Folder that relative image paths resolve "
                                                                    "against (default: the input file's folder)."})
    local_model: str | None = field(default=None, metadata={"help": "Run a local transformers model (path or Hub "
                                                                     "id) instead of an HTTP endpoint."})
    max_new_tokens: int = field(default=1024, metadata={"help": "Reply length limit."})
    temperature: float = field(default=0.0, metadata={"help": "Sampling temperature (0 = greedy)."})
    seed: int = field(default=0, metadata={"help": "Seed of every per-record choice (scenario, question, demos)."})
    limit: int | None = field(default=None, metadata={"help": "Only the first N records (for a dry run)."})
    with_mentions: bool = field(default=True, metadata={"help": "llava-med: include inline mentions (60K-IM)."})
    prompt_file: str | None = field(default=None, metadata={"help": "A YAML prompt file replacing the packaged one."})
    turn_filters: str = field(default="llava_med_turn_filters", metadata={"help": "llava-med: turn post-filter "
                                                                                  "YAML (reason -> phrases)."})
    demonstrations: str | None = field(default=None, metadata={"help": "biomed-vital: clinician-selected demos "
                                                                        "JSONL (context, response, modality)."})
    demos_per_modality: int = field(default=2, metadata={"help": "biomed-vital: demos sampled per modality per call "
                                                                  "(paper: 2; released code: 1)."})
    num_clusters: int = field(default=60, metadata={"help": "select-demos: K-means clusters (code: 60)."})
    num_samples: int = field(default=120, metadata={"help": "select-demos: candidates to pick across clusters."})
    text_model: str = field(default="sentence-transformers/all-mpnet-base-v2",
                            metadata={"help": "select-demos: sentence-transformers model for caption + mentions."})
    image_encoder: str | None = field(default=None, metadata={"help": "select-demos: CLIP vision encoder whose "
                                                                       "pooled features are joined to the text ones."})
    # The turn filters drop some conversations by design; a fifth of the records with nothing is a broken prompt,
    # model or parser, not filtering.
    max_failure_rate: float = failure_rate_field(
        0.2, "input records (conversations, for rate) that yielded no row: no reply, a reply that did not parse, or "
             "no turn left after the filters")


def chat_backend(args: GenerateArguments, endpoint):
    """The local transformers model of `--local_model`, else the endpoint's OpenAI-compatible backend."""
    if args.local_model:
        from hf_medvlm.llm.local import LocalChatBackend

        return LocalChatBackend.from_pretrained(args.local_model, max_new_tokens=args.max_new_tokens)
    if not endpoint.llm_base_url:
        raise ValueError("give --llm_base_url (an OpenAI-compatible endpoint) or --local_model")
    return endpoint.build_backend()


def run_method(method: str, args: GenerateArguments, backend, concurrency: int = 8, progress: bool = True) -> dict:
    """Run one method end to end; returns the report (also written to ``<output_dir>/report.json``)."""
    from hf_medvlm.llm import read_results, run_requests

    from ..files import atomic_write_text
    from . import biomed_vital, llava_med, pubmedvision
    from .records import read_figure_records, write_jsonl

    out = Path(args.output_dir)
    responses = out / "responses.jsonl"
    model_name = getattr(backend, "name", "")
    common = dict(temperature=args.temperature, max_tokens=args.max_new_tokens)
    if method == "rate":
        rows = [json.loads(line) for line in Path(args.input).read_text(encoding="utf-8").splitlines() if line.strip()]
        rows = rows[: args.limit] if args.limit else rows
        jobs = biomed_vital.rating_jobs(rows, prompt_file=args.prompt_file or "biomed_vital",
                                        max_tokens=args.max_new_tokens)
    else:
        records = read_figure_records(args.input, args.image_root)
        records = records[: args.limit] if args.limit else records
        if method == "llava-med":
            jobs = llava_med.self_instruct_jobs(records, prompt_file=args.prompt_file or "llava_med_self_instruct",
                                                with_mentions=args.with_mentions, **common)
        elif method == "pubmedvision":
            jobs = pubmedvision.reformat_jobs(records, prompt_file=args.prompt_file or "pubmedvision_reformat",
                                              seed=args.seed, **common)
        else:
            if not args.demonstrations:
                raise ValueError("generate biomed-vital needs --demonstrations (JSONL of context/response/modality)")
            demos = biomed_vital.read_demonstrations(args.demonstrations)
            jobs = biomed_vital.generation_jobs(records, demos, per_modality=args.demos_per_modality, seed=args.seed,
                                                prompt_file=args.prompt_file or "biomed_vital", **common)
    run = run_requests(jobs, backend, output_path=responses, concurrency=concurrency, desc=method, progress=progress)
    results = read_results(responses)
    # report.json, written last, marks a finished run: an earlier run's must not stand beside this run's data files.
    (out / "report.json").unlink(missing_ok=True)
    if method == "llava-med":
        rows_out, stats = llava_med.self_instruct_rows(records, results, turn_filters=args.turn_filters)
        counts = {"conversations": write_jsonl(out / "data" / "conversations.jsonl", rows_out)}
    elif method == "pubmedvision":
        alignment, instruct, stats = pubmedvision.reformat_rows(records, results, seed=args.seed,
                                                                prompt_file=args.prompt_file or "pubmedvision_reformat")
        counts = {"alignment": write_jsonl(out / "data" / "alignment.jsonl", alignment),
                  "instruct": write_jsonl(out / "data" / "instruct.jsonl", instruct)}
    elif method == "biomed-vital":
        rows_out, stats = biomed_vital.generation_rows(records, results)
        counts = {"conversations": write_jsonl(out / "data" / "conversations.jsonl", rows_out)}
    else:
        rows_out, stats = biomed_vital.rating_rows(rows, results, rating_model=model_name)
        counts = {"ratings": write_jsonl(out / "data" / "ratings.jsonl", rows_out)}
    failed, total = _failed_items(method, stats)
    report = {"method": method, "backend": model_name, "requests": run.to_dict(), "parsing": stats, "written": counts,
              "failed": {"count": failed, "of": total}}
    atomic_write_text(out / "report.json", json.dumps(report, indent=2) + "\n")
    return report


def _failed_items(method: str, stats: dict) -> tuple[int, int]:
    """(items that yielded no row, items in): input records, or conversations for `rate`."""
    if method == "rate":
        return sum(stats["unparsed_replies"].values()), stats["conversations_in"]
    produced = stats["instruct_rows"] if method == "pubmedvision" else stats["rows_out"]
    return stats["records_in"] - produced, stats["records_in"]


def select_demos(args: GenerateArguments) -> dict:
    """BioMed-VITAL demonstration candidates: embed caption+mentions (and images), K-means, sample across clusters."""
    import numpy as np

    from ..files import atomic_write_text
    from .biomed_vital import select_demonstration_candidates
    from .filtering import embed_captions
    from .records import figure_context, read_figure_records, write_jsonl

    records = read_figure_records(args.input, args.image_root)
    features = embed_captions([figure_context(r) for r in records], args.text_model)
    if args.image_encoder:
        features = np.concatenate([features, _image_features(records, args.image_encoder)], axis=1)
    complexity = [len(r.caption) + sum(len(m) for m in r.mentions) for r in records]
    picked, labels = select_demonstration_candidates(features, args.num_clusters, args.num_samples,
                                                     complexity=complexity, seed=args.seed)
    rows = [{"id": records[i].id, "cluster": int(labels[i]), "images": records[i].images,
             "context": figure_context(records[i]), "domain": records[i].domain} for i in picked]
    written = write_jsonl(Path(args.output_dir) / "demonstration_candidates.jsonl", rows)
    report = {"method": "select-demos", "records_in": len(records), "clusters": args.num_clusters, "picked": written}
    atomic_write_text(Path(args.output_dir) / "report.json", json.dumps(report, indent=2) + "\n")
    return report


def _image_features(records, encoder_path: str):
    import numpy as np
    import torch
    from PIL import Image
    from transformers import AutoImageProcessor, CLIPVisionModel

    model = CLIPVisionModel.from_pretrained(encoder_path).eval()
    processor = AutoImageProcessor.from_pretrained(encoder_path)
    chunks = []
    for start in range(0, len(records), 32):
        images = [Image.open(r.images[0]).convert("RGB") for r in records[start:start + 32]]
        with torch.no_grad():
            pooled = model(**processor(images=images, return_tensors="pt")).pooler_output
        chunks.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(chunks).astype(np.float32)
