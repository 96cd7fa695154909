"""The LLaVA-Med v1.0 path at tiny scale through the real CLI: a fresh LLaMA + CLIP model with a linear projector and
`<im_start>`/`<im_end>` (stage 1 trains those two embedding rows with the projector), then stage 2 on `llava_v0`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import make_rgb_image
from tests.training.conftest import run_cli

pytestmark = pytest.mark.integration

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "tiny" / "sft"


@pytest.fixture(scope="module")
def v1_parts(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny CLIP vision tower and a tiny LLaMA LM with the plain Llama-2 vocabulary (no `<image>`, no pad)."""
    from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from hf_medvlm.testing import _wordllama_tokenizer_file

    folder = tmp_path_factory.mktemp("v1_parts")
    torch.manual_seed(0)
    CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                     image_size=32, patch_size=8, projection_dim=32)).save_pretrained(folder / "clip")
    LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                 vocab_size=32000, max_position_embeddings=2048, tie_word_embeddings=False)
                     ).save_pretrained(folder / "llama")
    PreTrainedTokenizerFast(tokenizer_file=str(_wordllama_tokenizer_file()), bos_token="<s>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(folder / "llama")
    return folder / "clip", folder / "llama"


@pytest.fixture(scope="module")
def v1_stage1(v1_parts, demo_data_dir, tmp_path_factory) -> Path:
    clip, llama = v1_parts
    out = tmp_path_factory.mktemp("v1_stage1")
    run_cli("train", "--config", str(RECIPES / "v1_stage1.yaml"), "--vision_model_name_or_path", str(clip),
            "--text_model_name_or_path", str(llama), "--dataset_name", str(demo_data_dir), "--output_dir", str(out),
            "--learning_rate", "1e-1")
    return out


def _state(folder: Path) -> dict[str, torch.Tensor]:
    from hf_medvlm import LlavaMedForConditionalGeneration

    return {k: v.detach().clone() for k, v in LlavaMedForConditionalGeneration.from_pretrained(folder).state_dict().items()}


def test_stage1_trains_only_the_new_start_end_rows_and_the_projector(v1_stage1, v1_parts):
    from hf_medvlm import LlavaMedProcessor

    processor = LlavaMedProcessor.from_pretrained(v1_stage1)
    tokenizer = processor.tokenizer
    start, end, image, pad = tokenizer.convert_tokens_to_ids(["<im_start>", "<im_end>", "<image>", "<pad>"])
    assert min(start, end, image, pad) >= 32000  # added after the LLaMA vocabulary
    after = _state(v1_stage1)
    assert after["model.multi_modal_projector.linear_1.weight"].shape == (32, 32)  # v1.0's single Linear
    assert "model.multi_modal_projector.linear_2.weight" not in after
    original = load_file(str(v1_parts[1] / "model.safetensors"))
    embed, head = after["model.language_model.embed_tokens.weight"], after["lm_head.weight"]
    assert torch.equal(embed[:32000], original["model.embed_tokens.weight"])  # old rows fixed
    assert torch.equal(head[:32000], original["lm_head.weight"])
    mean = original["model.embed_tokens.weight"].mean(0)
    torch.testing.assert_close(embed[image], mean)  # <image>/<pad>: mean init, untouched
    torch.testing.assert_close(embed[pad], mean)
    for row in (start, end):  # the two v1.0 tokens moved away from their mean init
        assert (embed[row] - mean).abs().max() > 1e-3, row
    torch.testing.assert_close(head[start], original["lm_head.weight"].mean(0))  # lm_head frozen in stage 1


def test_processor_wraps_image_features_in_start_end_tokens(v1_stage1):
    from hf_medvlm import LlavaMedProcessor

    processor = LlavaMedProcessor.from_pretrained(v1_stage1)
    tokenizer = processor.tokenizer
    start, end, image = tokenizer.convert_tokens_to_ids(["<im_start>", "<im_end>", "<image>"])
    ids = processor(images=[make_rgb_image(50, 30)], text="<image>\nWhat is shown?", return_tensors="pt")["input_ids"][0]
    ids = ids.tolist()
    first = ids.index(start)
    assert ids[first + 1:first + 17] == [image] * 16 and ids[first + 17] == end  # (32 / 8)^2 = 16 positions
    assert processor.image_processor.do_pad is False and processor.image_processor.crop_size["height"] == 32


def test_stage2_trains_the_lm_on_llava_v0_and_stops_on_hash(v1_stage1, demo_data_dir, tmp_path):
    from transformers import GenerationConfig

    from hf_medvlm import LlavaMedForConditionalGeneration, LlavaMedProcessor
    from hf_medvlm.eval.generation import GenerationSettings, generate_answers

    out = tmp_path / "v1_stage2"
    run_cli("train", "--config", str(RECIPES / "v1_stage2.yaml"), "--model_name_or_path", str(v1_stage1),
            "--dataset_name", str(demo_data_dir), "--output_dir", str(out), "--learning_rate", "1e-2")
    before, after = _state(v1_stage1), _state(out)
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("model.vision_tower."))
    assert not torch.equal(before["model.language_model.layers.0.mlp.up_proj.weight"],
                           after["model.language_model.layers.0.mlp.up_proj.weight"])
    assert GenerationConfig.from_pretrained(out).stop_strings == ["###"]
    processor = LlavaMedProcessor.from_pretrained(out)
    assert "### Assistant: " in processor.chat_template and "</s>" not in processor.chat_template
    model = LlavaMedForConditionalGeneration.from_pretrained(out)
    answers = generate_answers(model, processor, ["What is shown?"], [[make_rgb_image()]],
                               GenerationSettings(max_new_tokens=4, batch_size=1), progress=False)
    assert len(answers) == 1 and "###" not in answers[0]
