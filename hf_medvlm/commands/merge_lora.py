"""Fold a LoRA adapter (and its fully trained projector) into a full checkpoint of its family. The result loads with
`AutoModelForImageTextToText.from_pretrained` and no PEFT, and its outputs equal the adapter model's up to
floating-point rounding."""

from __future__ import annotations

from dataclasses import dataclass, field

from .parser import parse

EPILOG = """example:
  hf-medvlm merge-lora --adapter_path runs/stage2-lora --output_dir runs/stage2-lora-merged
"""


@dataclass
class MergeLoraArguments:
    adapter_path: str = field(metadata={"help": "Folder written by a use_peft training run (adapter_config.json)."})
    output_dir: str = field(metadata={"help": "Where the merged full checkpoint and processor are written."})
    base_model_name_or_path: str | None = field(
        default=None, metadata={"help": "Base checkpoint; default: the one named in adapter_config.json."}
    )
    dtype: str = field(default="float32", metadata={"help": "Dtype for merging and saving (float32, bfloat16, ...).",
                                                    "choices": ["float32", "bfloat16", "float16"]})


def main(argv: list[str] | None = None) -> int:
    (args,) = parse((MergeLoraArguments,), argv, prog="hf-medvlm merge-lora", doc=__doc__, epilog=EPILOG)
    import torch
    from transformers import AutoProcessor

    from ..training.merge_lora import merge_lora

    merged = merge_lora(args.adapter_path, args.base_model_name_or_path, getattr(torch, args.dtype))
    merged.save_pretrained(args.output_dir)
    AutoProcessor.from_pretrained(args.adapter_path).save_pretrained(args.output_dir)  # with its chat template
    print(f"merged {args.adapter_path} into {args.output_dir}")
    return 0
