"""The PubMedVision data filters (Chen et al., 2024, Appendix B): `pubmedvision` keeps figure records with >= 5 medical
lexicon terms, images >= 336x336, (optionally) a medical-image classifier's approval and no near-duplicate caption,
writing kept.jsonl, dropped.jsonl (stage and reason per record) and report.json; `train-classifier` fits that
classifier's head on a frozen CLIP vision encoder."""

from __future__ import annotations

import json

from ..generation.pubmedvision_filter import FilterArguments, TrainClassifierArguments, filter_records, train_classifier
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
    run = filter_records if step == "pubmedvision" else train_classifier
    print(json.dumps(run(*parsed), indent=2))
    return 0
