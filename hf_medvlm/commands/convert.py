"""`hf-medvlm convert`: an original LLaVA-Med checkpoint (v1.5 `llava_mistral`, v1.0 `llava`, or v1.0 delta + base
LLaMA) to a LlavaMed checkpoint, or to stock `LlavaForConditionalGeneration` with `--to llava` (v1.5 only)."""

from __future__ import annotations

import argparse
from pathlib import Path

from transformers import HfArgumentParser

from ..models.llava_med.convert_llava_med_to_hf import ConvertArguments, convert, print_summary

EPILOG = """example:
  hf-medvlm convert --input_dir llava-med-v1.5-mistral-7b --output_dir llava-med-v1.5-hf --dtype bfloat16
  hf-medvlm convert --input_dir llava-med-v1.5-mistral-7b --output_dir llava-med-v1.5-llava --to llava
  hf-medvlm convert --input_dir llava_med_in_text_60k_delta --delta --base_dir llama-7b \\
      --vision_tower clip-vit-large-patch14 --output_dir llava-med-v1.0-hf
"""


def parse_args(argv: list[str] | None = None) -> ConvertArguments:
    parser = HfArgumentParser(ConvertArguments, description=__doc__.split("\n")[0], epilog=EPILOG)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    (args,) = parser.parse_args_into_dataclasses(args=argv)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    summary = convert(args)
    print_summary(summary)
    if args.push_to_hub:
        from ..hub import push_model

        card = {"summary": f"LLaVA-Med ({summary['source']}) converted to {summary['format']} format with "
                           f"`hf-medvlm convert` from `{Path(args.input_dir).name}`."}
        url = push_model(summary["output_dir"], args.push_to_hub, card_kwargs=card)
        print(f"pushed to {url}")
    return 0
