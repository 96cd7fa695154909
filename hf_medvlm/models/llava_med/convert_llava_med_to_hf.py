"""Convert an original LLaVA-Med checkpoint (v1.5 `llava_mistral`, v1.0 `llava`, or v1.0 delta + base LLaMA) to a
LlavaMed checkpoint, or to stock `LlavaForConditionalGeneration` with `--to llava` (v1.5 only).

Streaming: tensors are read one at a time (safetensors `safe_open`, or memory-mapped `.bin`) and written straight into
the output shards, so peak memory is about the largest tensor, not the model. Strict: every source key must match a row
of the key-map table (or the ignore list) and every tensor the target model expects must be produced with the right
shape; otherwise the conversion stops and names the keys. Output is written to a temp dir next to `--output_dir` and
renamed into place only when everything succeeded.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import safe_open
from tqdm.auto import tqdm
from transformers import GenerationConfig, LlavaConfig, LlavaProcessor
from transformers.dynamic_module_utils import custom_object_save

from .configuration_llava_med import LlavaMedConfig
from .modeling_llava_med import LlavaMedForConditionalGeneration
from .original_checkpoint import (
    CLIP_KEY_MAP,
    ORIGINAL_KEY_MAP,
    add_original_tokens,
    is_ignored,
    llava_med_config_from_original,
    load_original_tokenizer,
    map_key,
    memory_to_disk,
    processor_from_original,
    read_original_config,
)
from .processing_llava_med import LlavaMedProcessor

if TYPE_CHECKING:  # `convert(args)` reads the fields of the command's arguments dataclass
    from ...commands.convert import ConvertArguments

__all__ = ["convert", "CheckpointReader", "print_summary"]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
SAFETENSORS_DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16", torch.int64: "I64"}
VOCAB_KEYS = ("language_model.embed_tokens.weight", "language_model.lm_head.weight")


# --------------------------------------------------------------------------------------------- reading


class CheckpointReader:
    """Lazy tensor access over a (possibly sharded) safetensors or PyTorch `.bin` checkpoint directory."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self._handles: dict[str, object] = {}
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
                return {key: single for key in self._open(single).keys()}
        raise FileNotFoundError(f"{self.directory}: no model.safetensors(.index.json) or pytorch_model.bin(.index.json)")

    def _open(self, shard: str):
        if shard not in self._handles:
            # Keep one shard open at a time: a memory-mapped shard's touched pages count as resident memory until it
            # is closed, so holding every shard open would grow RSS to the whole checkpoint.
            self._handles.clear()
            path = self.directory / shard
            try:
                if shard.endswith(".safetensors"):
                    self._handles[shard] = safe_open(str(path), framework="pt")
                else:
                    self._handles[shard] = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
            except Exception as err:  # noqa: BLE001 - one sentence naming the file
                raise ValueError(f"{path}: cannot read this checkpoint file (truncated or corrupt?): {err}") from err
        return self._handles[shard]

    def keys(self) -> list[str]:
        return list(self.weight_map)

    def shape(self, key: str) -> tuple[int, ...]:
        handle = self._open(self.weight_map[key])
        if isinstance(handle, dict):
            return tuple(handle[key].shape)
        return tuple(handle.get_slice(key).get_shape())

    def get(self, key: str) -> torch.Tensor:
        handle = self._open(self.weight_map[key])
        try:
            return handle[key] if isinstance(handle, dict) else handle.get_tensor(key)
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"{self.directory / self.weight_map[key]}: cannot read tensor {key!r}: {err}") from err

    def shard_sizes(self) -> dict[str, int]:
        return {shard: (self.directory / shard).stat().st_size for shard in set(self.weight_map.values())}


# --------------------------------------------------------------------------------------------- planning


@dataclass
class Source:
    """Where one output tensor comes from: a key of a reader, optionally plus a base tensor, optionally vocab-grown."""

    reader: CheckpointReader
    key: str
    base: tuple[CheckpointReader, str] | None = None
    grow_to: int | None = None


def plan_tensors(reader: CheckpointReader, table: dict[str, str], ignored: list[str]) -> dict[str, Source]:
    plan, unknown = {}, []
    for key in reader.keys():
        target = map_key(key, table)
        if target is None:
            (ignored if is_ignored(key) else unknown).append(key)
            continue
        if target in plan:
            raise ValueError(f"{reader.directory}: keys {plan[target].key!r} and {key!r} both map to {target!r}")
        plan[target] = Source(reader, key)
    if unknown:
        raise ValueError(f"{reader.directory}: {len(unknown)} unknown key(s) not in the key-map table: {unknown[:10]}")
    return plan


def attach_base(plan: dict[str, Source], base: CheckpointReader, ignored: list[str]) -> None:
    """v1.0 delta: every language-model tensor is delta + base (the delta's extra vocabulary rows have no base)."""
    used = set()
    for target, source in plan.items():
        if source.key in base.weight_map:
            _check_delta_shape(source, base)
            source.base = (base, source.key)
            used.add(source.key)
    extra = [k for k in base.keys() if k not in used and not is_ignored(k)]
    if extra:
        raise ValueError(f"{base.directory}: base tensors with no counterpart in the delta: {extra[:10]}")
    ignored.extend(k for k in base.keys() if is_ignored(k))


def _check_delta_shape(source: Source, base: CheckpointReader) -> None:
    delta_shape, base_shape = source.reader.shape(source.key), base.shape(source.key)
    if delta_shape == base_shape:
        return
    if len(delta_shape) == 2 and delta_shape[1:] == base_shape[1:] and delta_shape[0] > base_shape[0]:
        return  # the delta's vocabulary extends the base's
    raise ValueError(
        f"delta/base mismatch for {source.key!r}: {source.reader.directory / source.reader.weight_map[source.key]} "
        f"has shape {list(delta_shape)} but {base.directory / base.weight_map[source.key]} has {list(base_shape)} "
        "(different vocabulary or model size?)"
    )


def expected_tensors(model_config: LlavaMedConfig) -> dict[str, tuple[int, ...]]:
    """On-disk key -> shape of every tensor the target model holds (from a weightless meta-device instance)."""
    with torch.device("meta"):
        model = LlavaMedForConditionalGeneration(model_config)
    return {memory_to_disk(k): tuple(v.shape) for k, v in model.state_dict().items()}


def check_plan(plan: dict[str, Source], expected: dict[str, tuple[int, ...]]) -> None:
    missing = sorted(set(expected) - set(plan))
    unexpected = sorted(set(plan) - set(expected))
    if missing or unexpected:
        names = [f"{plan[k].key} -> {k}" for k in unexpected[:10]]
        raise ValueError(f"the checkpoint does not fit the target model: missing {missing[:10]}, unexpected {names}")
    for target, source in plan.items():
        shape = list(source.reader.shape(source.key))
        if source.grow_to is not None:
            shape[0] = source.grow_to
        if tuple(shape) != expected[target]:
            raise ValueError(f"{source.key!r} has shape {shape} but the target model expects {list(expected[target])}")


# --------------------------------------------------------------------------------------------- writing


def materialize(source: Source, dtype: torch.dtype | None) -> torch.Tensor:
    tensor = source.reader.get(source.key)
    out_dtype = dtype or tensor.dtype
    if source.base is not None:
        base = source.base[0].get(source.base[1]).float()
        tensor = tensor.float().clone()
        tensor[: base.shape[0]] += base
    if source.grow_to is not None and source.grow_to > tensor.shape[0]:
        from .original_checkpoint import mean_rows

        tensor = mean_rows(tensor.float(), source.grow_to - tensor.shape[0])
    return tensor.to(out_dtype).contiguous()


def _nbytes(shape: tuple[int, ...], dtype: torch.dtype) -> int:
    n = 1
    for d in shape:
        n *= d
    return n * torch.empty((), dtype=dtype).element_size()


def write_safetensors_streaming(path: Path, names: list[str], shapes: dict, dtypes: dict, produce) -> None:
    """Write a safetensors file tensor by tensor: header from the planned shapes, then each tensor's bytes."""
    header, offset = {}, 0
    for name in names:
        size = _nbytes(shapes[name], dtypes[name])
        header[name] = {"dtype": SAFETENSORS_DTYPES[dtypes[name]], "shape": list(shapes[name]),
                        "data_offsets": [offset, offset + size]}
        offset += size
    header["__metadata__"] = {"format": "pt"}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(blob)))
        out.write(blob)
        for name in names:
            tensor = produce(name)
            if tuple(tensor.shape) != tuple(shapes[name]) or tensor.dtype != dtypes[name]:
                raise RuntimeError(f"internal error: {name} produced {tensor.shape}/{tensor.dtype}")
            if tensor.numel():
                out.write(memoryview(tensor.view(torch.uint8).numpy()))  # no extra copy of the tensor
            del tensor


def _parse_size(text: str) -> int:
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "B": 1}
    for unit, factor in units.items():
        if text.upper().endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def write_shards(folder: Path, plan: dict[str, Source], expected: dict, dtype: torch.dtype | None, max_shard: int) -> int:
    # Keep source order (shard by shard) so each input file is read once, front to back.
    names = sorted(plan, key=lambda k: (plan[k].reader.weight_map[plan[k].key], plan[k].key))
    dtypes = {}
    for name in names:
        stored = _stored_dtype(plan[name])
        dtypes[name] = dtype or stored
    groups, current, size = [], [], 0
    for name in names:
        nbytes = _nbytes(expected[name], dtypes[name])
        if current and size + nbytes > max_shard:
            groups.append(current)
            current, size = [], 0
        current.append(name)
        size += nbytes
    groups.append(current)
    weight_map, total = {}, 0
    progress = tqdm(total=len(names), desc="Converting tensors", unit="tensor")
    for i, group in enumerate(groups):
        shard = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors" if len(groups) > 1 else "model.safetensors"

        def produce(name):
            progress.update(1)
            return materialize(plan[name], dtypes[name])

        write_safetensors_streaming(folder / shard, group, expected, dtypes, produce)
        weight_map.update({name: shard for name in group})
        total += sum(_nbytes(expected[n], dtypes[n]) for n in group)
    progress.close()
    if len(groups) > 1:
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return total


def _stored_dtype(source: Source) -> torch.dtype:
    handle = source.reader._open(source.reader.weight_map[source.key])
    if isinstance(handle, dict):
        return handle[source.key].dtype
    code = handle.get_slice(source.key).get_dtype()
    return {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "I64": torch.int64}[code]


# --------------------------------------------------------------------------------------------- orchestration


def _load_inputs(args: ConvertArguments):
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
    tokenizer = load_original_tokenizer(args.input_dir)
    return original, tokenizer


def build_target(args: ConvertArguments, original: dict, tokenizer):
    original_vocab = len(tokenizer)
    added = add_original_tokens(tokenizer)
    new_tokens = {t: i for t, i in added.items() if i >= original_vocab}
    kwargs = llava_med_config_from_original(
        original, added, tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id,
        vision_tower=args.vision_tower,
    )
    kwargs["added_tokens"] = new_tokens
    config = LlavaMedConfig(**kwargs)
    processor = processor_from_original(tokenizer, config, original)
    return config, processor, new_tokens


def build_plan(args: ConvertArguments, config: LlavaMedConfig) -> tuple[dict[str, Source], list[str]]:
    ignored: list[str] = []
    reader = CheckpointReader(args.input_dir)
    plan = plan_tensors(reader, ORIGINAL_KEY_MAP, ignored)
    if args.delta:
        attach_base(plan, CheckpointReader(args.base_dir), ignored)
    if args.vision_tower:
        for key in [k for k in plan if k.startswith("vision_tower.")]:
            del plan[key]  # replaced by the separate CLIP
        plan.update(plan_tensors(CheckpointReader(args.vision_tower), CLIP_KEY_MAP, ignored))
    for key in VOCAB_KEYS:
        if key in plan:
            plan[key].grow_to = config.text_config.vocab_size
    return plan, ignored


def save_side_files(folder: Path, args: ConvertArguments, config: LlavaMedConfig, processor, dtype_name: str) -> None:
    generation = GenerationConfig(
        bos_token_id=config.text_config.bos_token_id, eos_token_id=config.text_config.eos_token_id,
        pad_token_id=config.text_config.pad_token_id,
    )
    generation.save_pretrained(folder)
    if args.to == "llava":
        stock = LlavaConfig(**{k: v for k, v in config.to_dict().items() if k in _LLAVA_FIELDS})
        stock.dtype = dtype_name
        stock.architectures = ["LlavaForConditionalGeneration"]
        stock.save_pretrained(folder)
        LlavaProcessor(
            image_processor=processor.image_processor, tokenizer=processor.tokenizer, patch_size=processor.patch_size,
            vision_feature_select_strategy=processor.vision_feature_select_strategy,
            chat_template=processor.chat_template, num_additional_image_tokens=processor.num_additional_image_tokens,
        ).save_pretrained(folder)
        _keep_tokenizer_json_verbatim(folder)
        return
    config.dtype = dtype_name
    config.architectures = ["LlavaMedForConditionalGeneration"]
    config.save_pretrained(folder)
    processor.save_pretrained(folder)
    _keep_tokenizer_json_verbatim(folder)
    # Remote code, so the checkpoint loads with trust_remote_code=True where hf_medvlm is not installed.
    with torch.device("meta"):
        custom_object_save(LlavaMedForConditionalGeneration(config), folder, config=config)


def _keep_tokenizer_json_verbatim(folder: Path) -> None:
    # LlamaTokenizer rebuilds its pre-tokenizer on load and would undo `match_original_chunking`; the generic fast
    # class loads tokenizer.json exactly as written, so the saved checkpoint tokenises like the original.
    path = folder / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False))


_LLAVA_FIELDS = (
    "vision_config", "text_config", "image_token_index", "projector_hidden_act", "vision_feature_select_strategy",
    "vision_feature_layer", "image_seq_length", "multimodal_projector_bias", "tie_word_embeddings",
)


def _finalize(tmp: Path, output: Path, overwrite: bool) -> None:
    if output.exists():
        if not overwrite:
            raise FileExistsError(f"{output}: already exists (pass --overwrite to replace it)")
        shutil.rmtree(output)
    os.replace(tmp, output)


def convert(args: ConvertArguments) -> dict:
    """Run the conversion; return the summary (tensors mapped, tokens added, dtype, size)."""
    output = Path(args.output_dir).resolve()
    if output.exists() and not args.overwrite:
        raise ValueError(f"{output}: already exists (pass --overwrite to replace it)")
    if args.dtype != "auto" and args.dtype not in DTYPES:
        raise ValueError(f"--dtype must be auto or one of {sorted(DTYPES)}, got {args.dtype!r}")
    original, tokenizer = _load_inputs(args)
    config, processor, new_tokens = build_target(args, original, tokenizer)
    plan, ignored = build_plan(args, config)
    expected = expected_tensors(config)
    check_plan(plan, expected)
    dtype = DTYPES.get(args.dtype)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
    try:
        total = write_shards(tmp, plan, expected, dtype, _parse_size(args.max_shard_size))
        dtype_name = str(dtype or _stored_dtype(plan["language_model.embed_tokens.weight"])).replace("torch.", "")
        save_side_files(tmp, args, config, processor, dtype_name)
        _finalize(tmp, output, args.overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"output_dir": str(output), "format": args.to, "source": original["model_type"], "tensors": len(plan),
            "ignored": len(ignored), "added_tokens": new_tokens, "dtype": dtype_name, "bytes": total}


def print_summary(summary: dict) -> None:
    print(
        f"converted {summary['source']} -> {summary['format']}: {summary['tensors']} tensors mapped "
        f"({summary['ignored']} ignored buffers), tokens added {summary['added_tokens']}, dtype {summary['dtype']}, "
        f"{summary['bytes'] / 1e9:.3f} GB -> {summary['output_dir']}"
    )
