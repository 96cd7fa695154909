"""The PubMedVision data filters (Chen et al., 2024, Appendix B): `pubmedvision` keeps figure records with >= 5 medical
lexicon terms in the caption (`--terms_in caption_and_mentions` also counts inline mentions), images >= 336x336,
(optionally) a medical-image classifier's approval and no near-duplicate caption, writing kept.jsonl, dropped.jsonl
(stage and reason per record) and report.json; `train-classifier` fits that classifier's head on a frozen CLIP vision
encoder (its labels: `hf-medvlm generate image-labels`)."""

from __future__ import annotations

import json

from ..generation.pubmedvision_filter import FilterArguments, TrainClassifierArguments, filter_records, train_classifier
from ..outcome import failure_exit_code
from .parser import SubCommand, parse_subcommand

EPILOG = """examples:
  hf-medvlm filter pubmedvision --input figures.jsonl --output_dir out/filtered \\
      --classifier out/medical_clf --dedup_model sentence-transformers/all-mpnet-base-v2
  hf-medvlm filter train-classifier --labels labelled_images.jsonl \\
      --vision_encoder openai/clip-vit-large-patch14-336 --output_dir out/medical_clf
"""

SUBCOMMANDS = {
    "pubmedvision": SubCommand((FilterArguments,), "lexicon, image size, classifier and caption-dedup filters"),
    "train-classifier": SubCommand((TrainClassifierArguments,), "fit the medical/non-medical image classifier"),
}


def main(argv: list[str] | None = None) -> int:
    step, parsed = parse_subcommand(SUBCOMMANDS, argv, prog="hf-medvlm filter", doc=__doc__, epilog=EPILOG)
    if step is None:
        return 0
    (args,) = parsed
    if step == "train-classifier":
        print(json.dumps(train_classifier(args), indent=2))
        return 0
    report = filter_records(args)
    print(json.dumps(report, indent=2))
    return failure_exit_code("filter", report["failed"]["count"], report["failed"]["of"], args.max_failure_rate,
                             "records", details=f"reasons in {args.output_dir}/dropped.jsonl")
