"""Convert an original LLaVA-Med checkpoint (v1.5 `llava_mistral`, v1.0 `llava`, or v1.0 delta + base LLaMA) to a
LlavaMed checkpoint, or to stock `LlavaForConditionalGeneration` with `--to llava` (v1.5 only), streaming shard by
shard; optionally push the result to the Hub."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..hub import push_model, require_hub_access
from .parser import parse

EPILOG = """examples:
  hf-medvlm convert --input_dir llava-med-v1.5-mistral-7b --output_dir llava-med-v1.5-hf --dtype bfloat16
  hf-medvlm convert --input_dir llava-med-v1.5-mistral-7b --output_dir llava-med-v1.5-llava --to llava
  hf-medvlm convert --input_dir llava_med_in_text_60k_delta --delta --base_dir llama-7b \\
      --vision_tower clip-vit-large-patch14 --output_dir llava-med-v1.0-hf
"""


@dataclass
class ConvertArguments:
    input_dir: str = field(metadata={"help": "Original checkpoint directory (config.json, shards, tokenizer); the delta "
                                             "directory with --delta."})
    output_dir: str = field(metadata={"help": "Where the converted checkpoint is written (must not exist unless "
                                              "--overwrite)."})
    to: str = field(default="llava_med", metadata={"help": "Output format: `llava_med` (LlavaMed classes) or `llava` "
                                                           "(stock LlavaForConditionalGeneration; v1.5 only)."})
    vision_tower: str | None = field(default=None, metadata={"help": "CLIP directory to take the vision tower from. "
                                     "Required for v1.0 (its tower is not in the state dict); for v1.5 it replaces "
                                     "the tower stored in the checkpoint, as the official loader does."})
    delta: bool = field(default=False, metadata={"help": "input_dir holds v1.0 delta weights: add them to --base_dir."})
    base_dir: str | None = field(default=None, metadata={"help": "Base LLaMA checkpoint for --delta (HF layout)."})
    dtype: str = field(default="auto", metadata={"help": "Output dtype: auto (as stored), float32, bfloat16, float16."})
    max_shard_size: str = field(default="5GB", metadata={"help": "Largest output shard, e.g. 5GB or 500MB."})
    overwrite: bool = field(default=False, metadata={"help": "Replace output_dir if it exists."})
    push_to_hub: str | None = field(default=None, metadata={"help": "Upload the result to this Hub repo id "
                                                                    "(hf_medvlm.hub.push_model)."})


def main(argv: list[str] | None = None) -> int:
    (args,) = parse((ConvertArguments,), argv, prog="hf-medvlm convert", doc=__doc__, epilog=EPILOG)
    if args.push_to_hub:
        require_hub_access(f"push {args.push_to_hub}")  # in offline mode, before a long conversion
    from ..models.llava_med.convert_llava_med_to_hf import convert, print_summary

    summary = convert(args)
    print_summary(summary)
    if args.push_to_hub:
        card = {"summary": f"LLaVA-Med ({summary['source']}) converted to {summary['format']} format with "
                           f"`hf-medvlm convert` from `{Path(args.input_dir).name}`."}
        url = push_model(summary["output_dir"], args.push_to_hub, card_kwargs=card)
        print(f"pushed to {url}")
    return 0
