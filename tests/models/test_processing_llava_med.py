import numpy as np
import pytest
from PIL import Image

from hf_medvlm import LlavaMedProcessor
from hf_medvlm.models.llava_med.processing_llava_med import build_llava_med_image_processor, load_chat_template
from hf_medvlm.testing import build_tiny_llava_med, load_llama2_tokenizer
from tests.conftest import make_rgb_image

CONVERSATION = [
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is shown?"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "A CT scan."}]},
    {"role": "user", "content": [{"type": "text", "text": "Any contrast?"}]},
    {"role": "assistant", "content": "Yes."},
]
VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)


def _render(template, messages, **kwargs):
    _, processor = build_tiny_llava_med(chat_template=template)
    return processor.apply_chat_template(messages, tokenize=False, **kwargs)


def test_mistral_instruct_rendering_matches_original_llama2_style():
    assert _render("mistral_instruct", CONVERSATION) == (
        "<s>[INST] <image>\nWhat is shown? [/INST] A CT scan. </s>[INST] Any contrast? [/INST] Yes. </s>"
    )
    assert _render("mistral_instruct", CONVERSATION[:1], add_generation_prompt=True) == (
        "<s>[INST] <image>\nWhat is shown? [/INST]"
    )


def test_mistral_instruct_wraps_an_explicit_system_message():
    messages = [{"role": "system", "content": "Be brief."}, *CONVERSATION[:1]]
    assert _render("mistral_instruct", messages) == (
        "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n<image>\nWhat is shown? [/INST]"
    )


def test_vicuna_v1_rendering():
    assert _render("vicuna_v1", CONVERSATION) == (
        f"<s>{VICUNA_SYSTEM} USER: <image>\nWhat is shown? ASSISTANT: A CT scan.</s>"
        "USER: Any contrast? ASSISTANT: Yes.</s>"
    )
    assert _render("vicuna_v1", CONVERSATION[:1], add_generation_prompt=True) == (
        f"<s>{VICUNA_SYSTEM} USER: <image>\nWhat is shown? ASSISTANT:"
    )


def test_plain_rendering_drops_the_instruction():
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "Describe the figure."}, {"type": "image"}]},
        {"role": "assistant", "content": "Axial CT of the abdomen."},
    ]
    assert _render("plain", messages) == "<s><image>Axial CT of the abdomen.\n"


def test_llava_v0_token_ids_match_v1_training_format():
    """v1.0.0 `llava/train/train.py` with `--version v0`: header `system + "\n\n"`, every turn
    `"### " + role + ": " + text + "\n"`, a final `"### "`, the whole string tokenized once (BOS, no EOS anywhere).
    The expectation is built from literal strings, not from the template."""
    _, processor = build_tiny_llava_med(chat_template="llava_v0")
    tokenizer = processor.tokenizer
    system = ("A chat between a curious human and an artificial intelligence assistant. "
              "The assistant gives helpful, detailed, and polite answers to the human's questions.")
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "What is shown?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A CT scan."}]},
        {"role": "user", "content": "Any contrast?"},
        {"role": "assistant", "content": "Yes."},
    ]
    expected = tokenizer(system + "\n\n### Human: What is shown?\n### Assistant: A CT scan.\n"
                         "### Human: Any contrast?\n### Assistant: Yes.\n### ").input_ids
    out = processor.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"][0], out["assistant_masks"][0]
    assert ids == expected
    assert ids.count(tokenizer.bos_token_id) == 1 and tokenizer.eos_token_id not in ids
    # Supervised: each answer, its newline and the "###" that ends it (the v0 stop signal); never a question.
    supervised = tokenizer.decode([i for i, m in zip(ids, mask) if m])
    assert supervised.replace(" ", "") == "ACTscan.\n###Yes.\n###"
    prompt = processor.apply_chat_template(messages[:1], tokenize=True, add_generation_prompt=True)[0]
    assert prompt == tokenizer(system + "\n\n### Human: What is shown?\n### Assistant:").input_ids


def test_llava_v0_needs_a_hash_stop_string_and_the_others_eos():
    from hf_medvlm.models.llava_med.processing_llava_med import stop_strings_for_template

    assert stop_strings_for_template("llava_v0") == ["###"]
    assert stop_strings_for_template(load_chat_template("llava_v0")) == ["###"]
    assert all(stop_strings_for_template(name) is None for name in ("mistral_instruct", "vicuna_v1", "plain"))


def test_string_content_and_multi_image_blocks():
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Compare."}]}]
    assert _render("mistral_instruct", messages) == "<s>[INST] <image>\n<image>\nCompare. [/INST]"
    assert _render("mistral_instruct", [{"role": "user", "content": "<image>\nHi"}]) == "<s>[INST] <image>\nHi [/INST]"


@pytest.mark.parametrize("template", ["mistral_instruct", "vicuna_v1", "plain"])
def test_generation_markers_supervise_only_assistant_text_and_eos(template):
    _, processor = build_tiny_llava_med(chat_template=template)
    messages = [dict(m) for m in CONVERSATION]
    messages[0] = {"role": "user", "content": [{"type": "image", "image": make_rgb_image()},
                                               {"type": "text", "text": "What is shown?"}]}
    out = processor.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_tensors="pt", return_assistant_tokens_mask=True
    )
    ids, mask = out["input_ids"][0].tolist(), out["assistant_masks"][0].tolist()
    supervised = processor.tokenizer.decode([i for i, m in zip(ids, mask) if m])
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    assert not any(m and i == image_id for i, m in zip(ids, mask))
    assert "What is shown" not in supervised and "INST" not in supervised and "USER" not in supervised
    expected = {"mistral_instruct": "A CT scan. </s> Yes. </s>", "vicuna_v1": "A CT scan.</s> Yes.</s>",
                "plain": "A CT scan.\nYes.\n"}[template]
    assert supervised.replace("  ", " ").lstrip() == expected


def test_image_token_expansion_clip336_is_576_per_image():
    processor = LlavaMedProcessor.from_tokenizer(load_llama2_tokenizer())
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    one = processor(images=[make_rgb_image()], text="<image>\nWhat?", return_tensors="pt")
    two = processor(images=[make_rgb_image(), make_rgb_image(30, 90)], text="<image>\n<image>\nWhat?",
                    return_tensors="pt")
    assert int((one["input_ids"] == image_id).sum()) == 576
    assert int((two["input_ids"] == image_id).sum()) == 1152
    assert tuple(two["pixel_values"].shape) == (2, 3, 336, 336)


def test_image_token_expansion_with_cls_kept():
    processor = LlavaMedProcessor.from_tokenizer(
        load_llama2_tokenizer(), image_size=32, patch_size=8, vision_feature_select_strategy="full"
    )
    out = processor(images=[make_rgb_image()], text="<image>", return_tensors="pt")
    assert int((out["input_ids"] == processor.image_token_id).sum()) == 17


def test_batched_multi_image_samples():
    _, processor = build_tiny_llava_med()
    texts = ["<image>\nOne?", "<image>\n<image>\nTwo?"]
    images = [[make_rgb_image()], [make_rgb_image(seed=1), make_rgb_image(seed=2)]]
    out = processor(images=images, text=texts, padding=True, return_tensors="pt")
    counts = (out["input_ids"] == processor.image_token_id).sum(dim=1).tolist()
    assert counts == [16, 32]
    assert out["pixel_values"].shape[0] == 3
    assert out["attention_mask"][0, 0] == 0  # left padding for generation


@pytest.mark.parametrize(
    "images, text, message",
    [
        ([make_rgb_image()], "<image><image>", "2 <image> token"),
        ([make_rgb_image(), make_rgb_image()], "<image>", "1 <image> token"),
        ([[make_rgb_image()], [make_rgb_image(), make_rgb_image()]], ["<image>", "<image>"], "sample 1"),
        (None, "<image>", "0 image"),
    ],
)
def test_image_count_mismatch_is_a_clear_error(images, text, message):
    _, processor = build_tiny_llava_med()
    with pytest.raises(ValueError, match=message):
        processor(images=images, text=text)


def test_pad_to_square_uses_clip_mean_colour_centred_and_deterministic():
    image_processor = build_llava_med_image_processor(image_size=8, image_aspect_mode="pad")
    image_processor.do_normalize = False
    image_processor.do_rescale = False
    white = Image.fromarray(np.full((4, 8, 3), 255, dtype=np.uint8))  # wide: padded top and bottom
    first = image_processor(white, return_tensors="np")["pixel_values"][0]
    second = image_processor(white, return_tensors="np")["pixel_values"][0]
    assert np.array_equal(first, second)
    assert np.allclose(first[:, 0, :].T, [122, 116, 104], atol=1)  # top row = mean colour
    assert np.allclose(first[:, -1, :].T, [122, 116, 104], atol=1)  # bottom row, symmetric
    assert np.allclose(first[:, 4, :], 255, atol=1)  # the centre is the image


def test_no_padding_mode_crops_instead():
    image_processor = build_llava_med_image_processor(image_size=8, image_aspect_mode="none")
    assert image_processor.do_pad is False


def test_unknown_template_name():
    with pytest.raises(ValueError, match="unknown chat template"):
        load_chat_template("llama3")


def test_processor_round_trip_keeps_template_and_left_padding(tmp_path):
    _, processor = build_tiny_llava_med(chat_template="vicuna_v1")
    processor.save_pretrained(tmp_path)
    loaded = LlavaMedProcessor.from_pretrained(tmp_path)
    assert loaded.chat_template == processor.chat_template
    assert loaded.tokenizer.padding_side == "left"
    assert loaded.image_processor.do_pad and loaded.patch_size == 8
    assert (tmp_path / "chat_template.jinja").exists()
