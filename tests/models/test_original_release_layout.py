"""The original checkpoints' slow-tokenizer layout loads on the default install (issue 14, item 1).

The fixtures (`conftest.originals`) hold only what the releases hold: a real SentencePiece `tokenizer.model`, no
`tokenizer.json`, no processor files. Nothing here is skipped when `sentencepiece`/`protobuf` are missing: they are core
dependencies, so a missing one fails these tests.
"""

from __future__ import annotations

import json
import shutil

import pytest
import sentencepiece as spm
import torch
from transformers import AutoProcessor, AutoTokenizer

import hf_medvlm  # noqa: F401 - registers the Auto classes
from hf_medvlm import LlavaMedProcessor
from hf_medvlm.models.llava_med.original_checkpoint import LlavaMedOriginalProcessor, load_original_tokenizer

from .original_builders import SP_VOCAB, V1_TOKENS, make_image, reference_ids

TEXTS = ["[INST] What organ is shown? [/INST]", "\nThe  chest x-ray: 12.5 mm,  lobe ", "ünïcödé → 肝 opacity", " and "]
RELEASE_FILES = {
    # microsoft/llava-med-v1.5-mistral-7b (4 shards in the release too)
    "v1.5": {"config.json", "generation_config.json", "model.safetensors.index.json", "special_tokens_map.json",
             "tokenizer.model", "tokenizer_config.json", *(f"model-0000{i}-of-00004.safetensors" for i in range(1, 5))},
    # microsoft/llava-med-7b-delta layout (v1.0): PyTorch shards and the added tokens of its training code
    "v1.0": {"config.json", "pytorch_model.bin.index.json", "special_tokens_map.json", "tokenizer.model",
             "tokenizer_config.json", "added_tokens.json", "pytorch_model-00001-of-00002.bin",
             "pytorch_model-00002-of-00002.bin"},
}


@pytest.mark.parametrize("version", ["v1.5", "v1.0"])
def test_fixture_is_the_release_layout(originals, version):
    folder = originals["root"] / version
    assert {p.name for p in folder.iterdir()} == RELEASE_FILES[version]
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    assert tokenizer_config["tokenizer_class"] == "LlamaTokenizer" and "chat_template" not in tokenizer_config
    sp = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))  # a real SentencePiece model
    assert sp.vocab_size() == SP_VOCAB and sp.id_to_piece(2) == "</s>" and sp.piece_to_id("<0x0A>") > 2


def test_auto_tokenizer_reads_v15_like_sentencepiece(originals):
    tokenizer = AutoTokenizer.from_pretrained(originals["root"] / "v1.5")
    sp = originals["v1.5"]["sp"]
    assert len(tokenizer) == SP_VOCAB and tokenizer.eos_token_id == 2 and tokenizer.pad_token == "<unk>"
    for text in TEXTS[:3]:
        assert tokenizer(text).input_ids == [1, *sp.encode(text)], text


@pytest.mark.parametrize("version", ["v1.0", "delta"])
def test_v10_and_delta_tokenizers_read_with_their_added_tokens(originals, tmp_path, version):
    folder = originals["root"] / "v1.0"
    if version == "delta":  # a delta folder carries the same tokenizer files as the merged checkpoint
        folder = shutil.copytree(folder, tmp_path / "llava_med_in_text_60k_delta")
    auto = AutoTokenizer.from_pretrained(folder)  # loads on the default install (but see load_original_tokenizer)
    ours = load_original_tokenizer(folder)
    for tokenizer in (auto, ours):
        assert len(tokenizer) == SP_VOCAB + 4 and tokenizer.pad_token == "[PAD]"
        assert tokenizer.convert_tokens_to_ids(V1_TOKENS) == list(range(SP_VOCAB, SP_VOCAB + 4))
    sp = originals["v1.0"]["sp"]
    for text in TEXTS[:3]:
        assert ours(text).input_ids == [1, *sp.encode(text)], text


@pytest.mark.parametrize("version", ["v1.5", "v1.0"])
def test_processor_ids_equal_the_original_chunked_sentencepiece_ids(originals, version):
    """Every text chunk between image tokens is its own SentencePiece sentence, leading spaces included."""
    processor = LlavaMedOriginalProcessor.from_pretrained(originals["root"] / version)
    prompt = "Compare <image> and <image>\n please. [/INST]"
    ids = processor(text=prompt, images=[make_image(40, 40, 1), make_image(40, 40, 2)])["input_ids"][0]
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    reference = reference_ids(originals[version], prompt)
    if version == "v1.0":  # the original's <im_patch> positions are LlavaMed's <image> placeholders
        reference = [image_id if i == SP_VOCAB + 1 else i for i in reference]
    else:  # one -200 sentinel per image -> 16 placeholders each
        reference = [x for i in reference for x in ([image_id] * 16 if i == -200 else [i])]
    assert ids == reference


def test_auto_processor_v15_is_built_from_the_vision_tower(originals):
    processor = AutoProcessor.from_pretrained(originals["root"] / "v1.5")
    assert type(processor) is LlavaMedProcessor or isinstance(processor, LlavaMedProcessor)
    assert processor.image_processor.crop_size["height"] == 32 and processor.image_processor.do_pad
    assert processor.patch_size == 8 and "[INST]" in processor.chat_template
    assert processor.tokenizer.convert_tokens_to_ids(["<image>", "<pad>"]) == [SP_VOCAB, SP_VOCAB + 1]
    out = processor(text="<image>\nWhat?", images=[make_image(48, 40, 0)], return_tensors="pt")
    assert out["pixel_values"].shape == (1, 3, 32, 32) and int((out["input_ids"] == SP_VOCAB).sum()) == 16


@pytest.mark.parametrize(
    "version, tower, size, pad, template",
    [("v1.5", "openai/clip-vit-large-patch14-336", 336, True, "[INST]"),
     ("v1.0", "openai/clip-vit-large-patch14", 224, False, "### Human")],
)
def test_processor_of_the_real_configs_uses_clip336_pad_or_clip224(originals, tmp_path, version, tower, size, pad,
                                                                   template):
    """The real configs name the OpenAI CLIP repos; the geometry is known without Hub access, as the original uses it."""
    folder = shutil.copytree(originals["root"] / version, tmp_path / version)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"mm_vision_tower": tower, "mm_hidden_size": 1024}))
    processor = LlavaMedOriginalProcessor.from_pretrained(folder)
    assert processor.image_processor.crop_size == {"height": size, "width": size}
    assert processor.image_processor.do_pad is pad and processor.patch_size == 14 and template in processor.chat_template
    out = processor(text="<image>", images=[make_image(400, 300, 0)], return_tensors="pt")
    assert out["pixel_values"].shape == (1, 3, size, size)
    assert int((out["input_ids"] == processor.image_token_id).sum()) == (size // 14) ** 2
    if version == "v1.0":
        wrap = processor.tokenizer.convert_ids_to_tokens(out["input_ids"][0, [1, -1]].tolist())
        assert wrap == ["<im_start>", "<im_end>"]
    else:
        assert torch.equal(out["input_ids"][0, :1], torch.tensor([1]))
