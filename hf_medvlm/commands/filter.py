"""`hf-medvlm filter <step>`: the PubMedVision data filters (Chen et al., 2024, Appendix B).

- ``pubmedvision``: text (>= 5 unique medical-lexicon terms in the caption; `--terms_in caption_and_mentions` also
  counts inline mentions), image size (>= 336x336), an
  optional medical/non-medical image classifier, then caption-embedding near-duplicate removal. Writes
  ``kept.jsonl`` (figure records, ready for ``hf-medvlm generate``), ``dropped.jsonl`` (each with its stage and
  reason) and ``report.json`` with kept/dropped counts per stage.
- ``train-classifier``: fit the classifier head on a frozen CLIP vision encoder from labelled images.
"""

from __future__ import annotations

import json
import sys
from argparse import ArgumentDefaultsHelpFormatter, RawDescriptionHelpFormatter

from transformers import HfArgumentParser

from ..generation.pubmedvision_filter import FilterArguments, TrainClassifierArguments, filter_records, train_classifier

EPILOG = """examples:
  hf-medvlm filter pubmedvision --input figures.jsonl --output_dir out/filtered \\
      --classifier out/medical_clf --dedup_model sentence-transformers/all-mpnet-base-v2
  hf-medvlm filter train-classifier --labels labelled_images.jsonl \\
      --vision_encoder openai/clip-vit-large-patch14-336 --output_dir out/medical_clf
"""


class _HelpFormatter(ArgumentDefaultsHelpFormatter, RawDescriptionHelpFormatter):
    """Show defaults and keep the example epilog's line breaks."""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    steps = {"pubmedvision": (FilterArguments, filter_records), "train-classifier": (TrainClassifierArguments,
                                                                                     train_classifier)}
    if not argv or argv[0] not in steps:
        print(f"usage: hf-medvlm filter {{{','.join(steps)}}} [options]   (--help after a step)\n\n{EPILOG}")
        return 0 if argv[:1] in ([], ["-h"], ["--help"]) else 2
    dataclass_type, run = steps[argv[0]]
    parser = HfArgumentParser(dataclass_type, prog=f"hf-medvlm filter {argv[0]}", epilog=EPILOG, description=__doc__,
                              formatter_class=_HelpFormatter)
    (args,) = parser.parse_args_into_dataclasses(argv[1:])
    print(json.dumps(run(args), indent=2))
    return 0
