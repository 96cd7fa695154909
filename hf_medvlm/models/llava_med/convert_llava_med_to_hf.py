"""Convert an original LLaVA-Med checkpoint (v1.5 `llava_mistral`, v1.0 `llava`, or v1.0 delta + base LLaMA) to a
LlavaMed checkpoint, or to stock `LlavaForConditionalGeneration` with `--to llava` (v1.5 only).

Keys are renamed by `ORIGINAL_KEY_MAPPING` (the mapping direct loading uses) and written in the layout
`save_pretrained` writes. Strict (every source and target tensor accounted for, or the keys are named), streaming (peak
memory about one output shard) and atomic (`.{name}.tmp-{host}-{pid}-*` renamed into place when complete): how each is
done is in docs/convert.md, "Strict, one key mapping", "Output" and "Memory".
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from huggingface_hub import split_torch_state_dict_into_shards
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm
from transformers import GenerationConfig, LlavaConfig, LlavaProcessor
from transformers.core_model_loading import revert_weight_conversion
from transformers.dynamic_module_utils import custom_object_save
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME

from ...files import remove_stale_temporaries, temporary_path
from .configuration_llava_med import LlavaMedConfig
from .modeling_llava_med import LlavaMedForConditionalGeneration, _load_vision_encoder, mean_rows
from .original_checkpoint import is_ignored, original_config_and_processor, read_original_config, rename_original_key
from .processing_llava_med import stop_strings_for_template

if TYPE_CHECKING:  # `convert(args)` reads the fields of the command's arguments dataclass
    from ...commands.convert import ConvertArguments

__all__ = ["convert", "CheckpointReader", "remove_stale_temporaries", "print_summary"]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
VOCAB_KEYS = ("model.language_model.embed_tokens.weight", "lm_head.weight")


# --------------------------------------------------------------------------------------------- reading


class CheckpointReader:
    """Lazy tensor access over a (possibly sharded) safetensors or PyTorch `.bin` checkpoint directory.

    Each read opens its shard afresh and returns a memory-mapped tensor: the pages it touches stay resident only while
    that tensor lives, so reading a whole checkpoint never accumulates it in memory.
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.weight_map = self._weight_map()

    def _weight_map(self) -> dict[str, str]:
        for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
            index = self.directory / index_name
            if index.is_file():
                weight_map = json.loads(index.read_text())["weight_map"]
                for shard in sorted(set(weight_map.values())):
                    if not (self.directory / shard).is_file():
                        raise FileNotFoundError(f"{self.directory / shard}: shard listed in {index} is missing")
                return weight_map
        for single in ("model.safetensors", "pytorch_model.bin"):
            if (self.directory / single).is_file():
                return {key: single for key in self._read(single)}
        raise FileNotFoundError(f"{self.directory}: no model.safetensors(.index.json) or pytorch_model.bin(.index.json)")

    def _read(self, shard: str, key: str | None = None):
        """The keys of `shard`, or its tensor `key`; an unreadable file is one sentence naming it."""
        path = self.directory / shard
        try:
            if shard.endswith(".safetensors"):
                with safe_open(str(path), framework="pt") as handle:
                    return list(handle.keys()) if key is None else handle.get_tensor(key)
            state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
            return list(state) if key is None else state[key]
        except Exception as err:  # noqa: BLE001 - one sentence naming the file
            what = "this checkpoint file" if key is None else f"tensor {key!r}"
            raise ValueError(f"{path}: cannot read {what} (truncated or corrupt?): {err}") from err

    def source(self, key: str) -> Source:
        shard = self.weight_map[key]
        read = functools.partial(self._read, shard, key)
        tensor = read()  # memory-mapped: shape and dtype without reading the data
        return Source(read, f"{self.directory / shard}: {key}", tuple(tensor.shape), tensor.dtype, key=key)


# --------------------------------------------------------------------------------------------- planning


@dataclass
class Source:
    """Where one output tensor comes from: a lazy read, optionally plus a base tensor (delta), optionally vocab-grown."""

    read: Callable[[], torch.Tensor]
    name: str  # file and key, for error messages
    shape: tuple[int, ...]
    dtype: torch.dtype
    key: str = ""
    base: Source | None = None
    grow_to: int | None = None

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.grow_to, *self.shape[1:]) if self.grow_to else self.shape


def plan_tensors(reader: CheckpointReader, ignored: list[str]) -> dict[str, Source]:
    """In-memory LlavaMed key -> source, for every tensor of an original checkpoint (renamed by the key mapping)."""
    plan = {}
    for key in reader.weight_map:
        if is_ignored(key):
            ignored.append(key)
            continue
        target = rename_original_key(key)
        if target in plan:
            raise ValueError(f"{reader.directory}: keys {plan[target].key!r} and {key!r} both map to {target!r}")
        plan[target] = reader.source(key)
    return plan


def attach_base(plan: dict[str, Source], base: CheckpointReader, ignored: list[str]) -> None:
    """v1.0 delta: every language-model tensor is delta + base (the delta's extra vocabulary rows have no base)."""
    for source in plan.values():
        if source.key not in base.weight_map:
            continue
        source.base = base.source(source.key)
        delta_shape, base_shape = source.shape, source.base.shape
        extends_vocab = len(delta_shape) == 2 and delta_shape[1:] == base_shape[1:] and delta_shape[0] > base_shape[0]
        if delta_shape != base_shape and not extends_vocab:
            raise ValueError(
                f"delta/base mismatch for {source.key!r}: {source.name} has shape {list(delta_shape)} but "
                f"{source.base.name} has {list(base_shape)} (different vocabulary or model size?)"
            )
    in_delta = {source.key for source in plan.values()}
    extra = [k for k in base.weight_map if k not in in_delta and not is_ignored(k)]
    if extra:
        raise ValueError(f"{base.directory}: base tensors with no counterpart in the delta: {extra[:10]}")
    ignored.extend(k for k in base.weight_map if is_ignored(k))


def check_plan(plan: dict[str, Source], expected: dict[str, tuple[int, ...]]) -> None:
    missing = sorted(set(expected) - set(plan))
    unexpected = sorted(set(plan) - set(expected))
    if missing or unexpected:
        names = [plan[k].name for k in unexpected[:10]]
        raise ValueError(f"the checkpoint does not fit the target model: missing {missing[:10]}, unexpected {names}")
    for target, source in plan.items():
        if source.out_shape != expected[target]:
            raise ValueError(
                f"{source.name} has shape {list(source.out_shape)}; the target model expects {list(expected[target])}"
            )


def on_disk_names(model: LlavaMedForConditionalGeneration) -> dict[str, str]:
    """In-memory key -> the key `save_pretrained` writes (stock Llava's layout), by transformers' own reverse mapping."""
    state = model.state_dict()
    saved = revert_weight_conversion(model, dict(state))
    by_tensor = {id(tensor): disk for disk, tensor in saved.items()}
    return {key: by_tensor[id(tensor)] for key, tensor in state.items()}


# --------------------------------------------------------------------------------------------- writing


def materialize(source: Source, dtype: torch.dtype | None) -> torch.Tensor:
    tensor = source.read()
    out_dtype = dtype or tensor.dtype
    if source.base is not None:
        base = source.base.read().float()
        tensor = tensor.float().clone()
        tensor[: base.shape[0]] += base
    if source.grow_to is not None and source.grow_to > tensor.shape[0]:
        tensor = mean_rows(tensor.float(), source.grow_to - tensor.shape[0])
    return tensor.to(out_dtype).contiguous()


def write_shards(folder: Path, plan: dict[str, Source], dtype: torch.dtype | None, max_shard_size: str) -> int:
    """Write `plan` (on-disk key -> source) as safetensors shards + index; one output shard is in memory at a time."""
    meta = {name: torch.empty(s.out_shape, dtype=dtype or s.dtype, device="meta") for name, s in plan.items()}
    split = split_torch_state_dict_into_shards(meta, max_shard_size=max_shard_size)
    with tqdm(total=len(plan), desc="Converting tensors", unit="tensor") as progress:
        for filename, names in split.filename_to_tensors.items():
            shard = {}
            for name in names:
                shard[name] = materialize(plan[name], dtype)
                progress.update(1)
            save_file(shard, str(folder / filename), metadata={"format": "pt"})
            del shard  # drops the mapped input pages before the next shard
    if split.is_sharded:
        index = {"metadata": split.metadata, "weight_map": dict(sorted(split.tensor_to_filename.items()))}
        (folder / SAFE_WEIGHTS_INDEX_NAME).write_text(json.dumps(index, indent=2))
    return split.metadata["total_size"]


# --------------------------------------------------------------------------------------------- orchestration


def _check_inputs(args: ConvertArguments) -> dict:
    # The converter streams local shards; a Hub checkpoint is downloaded first (`hf download <repo> --local-dir D`).
    if not Path(args.input_dir).is_dir():
        raise FileNotFoundError(f"--input_dir {args.input_dir}: no such directory (download the original checkpoint "
                                "first, e.g. `hf download microsoft/llava-med-v1.5-mistral-7b --local-dir DIR`)")
    original, config_file = read_original_config(args.input_dir)
    if args.delta and not args.base_dir:
        raise ValueError("--delta needs --base_dir (the base LLaMA checkpoint the delta applies to)")
    if original["model_type"] == "llava" and not args.vision_tower:
        raise ValueError(f"{config_file}: a v1.0 checkpoint keeps no vision tower weights; pass --vision_tower <CLIP dir>")
    if args.to not in ("llava_med", "llava"):
        raise ValueError(f"--to must be 'llava_med' or 'llava', got {args.to!r}")
    if args.to == "llava" and original["model_type"] != "llava_mistral":
        raise ValueError(
            f"{config_file}: --to llava needs a v1.5 checkpoint; v1.0's linear projector and <im_start>/<im_end> "
            "wrapping have no stock Llava equivalent (convert to llava_med instead)"
        )
    return original


def build_plan(args: ConvertArguments, config: LlavaMedConfig) -> tuple[dict[str, Source], list[str]]:
    """On-disk output key -> source, checked against a weightless instance of the target model."""
    ignored: list[str] = []
    plan = plan_tensors(CheckpointReader(args.input_dir), ignored)
    if args.delta:
        attach_base(plan, CheckpointReader(args.base_dir), ignored)
    if args.vision_tower:
        plan = {k: v for k, v in plan.items() if not k.startswith("model.vision_tower.")}  # replaced by that CLIP
        # Read by transformers, so every CLIP layout it knows (CLIPModel, CLIPVisionModel, `vision_model.*`) works.
        for name, tensor in _load_vision_encoder(args.vision_tower, None).state_dict().items():
            key = f"model.vision_tower.{name}"
            plan[key] = Source(lambda t=tensor: t, f"{args.vision_tower}: {key}", tuple(tensor.shape), tensor.dtype)
    for key in VOCAB_KEYS:
        if key in plan:
            plan[key].grow_to = config.text_config.vocab_size
    with torch.device("meta"):
        model = LlavaMedForConditionalGeneration(config)
    check_plan(plan, {k: tuple(v.shape) for k, v in model.state_dict().items()})
    disk = on_disk_names(model)
    return {disk[k]: plan[k] for k in plan}, ignored


def save_side_files(folder: Path, args: ConvertArguments, config: LlavaMedConfig, processor, dtype_name: str) -> None:
    generation = GenerationConfig(
        bos_token_id=config.text_config.bos_token_id, eos_token_id=config.text_config.eos_token_id,
        pad_token_id=config.text_config.pad_token_id,
        # v1.0 answers end with the next "###", not EOS (its eval stopped on "###"); v1.5's end with EOS.
        stop_strings=stop_strings_for_template(processor.chat_template),
    )
    generation.save_pretrained(folder)
    saved_config, saved_processor, stock = config, processor, args.to == "llava"
    if stock:
        llava_fields = {f.name for f in fields(LlavaConfig)}
        saved_config = LlavaConfig(**{k: v for k, v in config.to_dict().items() if k in llava_fields})
        saved_processor = LlavaProcessor(
            image_processor=processor.image_processor, tokenizer=processor.tokenizer, patch_size=processor.patch_size,
            vision_feature_select_strategy=processor.vision_feature_select_strategy,
            chat_template=processor.chat_template, num_additional_image_tokens=processor.num_additional_image_tokens,
        )
    saved_config.dtype = dtype_name
    saved_config.architectures = ["LlavaForConditionalGeneration" if stock else "LlavaMedForConditionalGeneration"]
    saved_config.save_pretrained(folder)
    saved_processor.save_pretrained(folder)
    # LlamaTokenizer rebuilds its pre-tokenizer on load and would undo `match_original_chunking`; the generic fast
    # class loads tokenizer.json exactly as written, so the saved checkpoint tokenises like the original.
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    tokenizer_config["tokenizer_class"] = "PreTrainedTokenizerFast"
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2, ensure_ascii=False))
    if not stock:
        # Remote code, so the checkpoint loads with trust_remote_code=True where hf_medvlm is not installed.
        with torch.device("meta"):
            custom_object_save(LlavaMedForConditionalGeneration(config), folder, config=config)


def _finalize(tmp: Path, output: Path, overwrite: bool) -> None:
    if not output.exists():
        os.replace(tmp, output)
        return
    if not overwrite:
        raise FileExistsError(f"{output}: already exists (pass --overwrite to replace it)")
    old = temporary_path(output, "old")
    os.replace(output, old)  # the old output disappears whole, never half-deleted under its real name
    os.replace(tmp, output)
    shutil.rmtree(old)


def convert(args: ConvertArguments) -> dict:
    """Run the conversion; return the summary (tensors mapped, tokens added, dtype, size)."""
    output = Path(args.output_dir).resolve()
    if output.exists() and not args.overwrite:
        raise ValueError(f"{output}: already exists (pass --overwrite to replace it)")
    if args.dtype != "auto" and args.dtype not in DTYPES:
        raise ValueError(f"--dtype must be auto or one of {sorted(DTYPES)}, got {args.dtype!r}")
    original = _check_inputs(args)
    config, processor, _ = original_config_and_processor(args.input_dir, original, args.vision_tower)
    plan, ignored = build_plan(args, config)
    dtype = DTYPES.get(args.dtype)
    output.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(output)  # host and pid in the names prove a leftover ours and its writer dead
    tmp = temporary_path(output, "tmp")
    tmp.mkdir()
    try:
        total = write_shards(tmp, plan, dtype, args.max_shard_size)
        dtype_name = str(dtype or plan["language_model.model.embed_tokens.weight"].dtype).replace("torch.", "")
        save_side_files(tmp, args, config, processor, dtype_name)
        _finalize(tmp, output, args.overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"output_dir": str(output), "format": args.to, "source": original["model_type"], "tensors": len(plan),
            "ignored": len(ignored), "added_tokens": config.added_tokens, "dtype": dtype_name, "bytes": total}


def print_summary(summary: dict) -> None:
    print(
        f"converted {summary['source']} -> {summary['format']}: {summary['tensors']} tensors mapped "
        f"({summary['ignored']} ignored buffers), tokens added {summary['added_tokens']}, dtype {summary['dtype']}, "
        f"{summary['bytes'] / 1e9:.3f} GB -> {summary['output_dir']}"
    )
