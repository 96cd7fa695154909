import copy
import json
import re
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    CLIPVisionConfig,
    CLIPVisionModel,
    GenerationMixin,
    LlavaConfig,
    LlavaForConditionalGeneration,
    MistralConfig,
    pipeline,
)
from safetensors.torch import load_file
from transformers.conversion_mapping import get_model_conversion_mapping
from transformers.core_model_loading import PrefixChange, WeightRenaming

from hf_medvlm import LlavaMedConfig, LlavaMedForConditionalGeneration, LlavaMedModel, LlavaMedProcessor
from hf_medvlm.models.llava_med.modeling_llava_med import LlavaMedLinearProjector
from hf_medvlm.testing import build_tiny_llava_med, load_llama2_tokenizer, tiny_llava_med_config
from tests.conftest import make_rgb_image


def _inputs(processor, questions, images_per_sample=1, seed=0):
    conversations = []
    for i, question in enumerate(questions):
        blocks = [{"type": "image", "image": make_rgb_image(40 + 8 * i, 32, seed=seed + 10 * i + k)}
                  for k in range(images_per_sample)]
        conversations.append([{"role": "user", "content": [*blocks, {"type": "text", "text": question}]}])
    return processor.apply_chat_template(
        conversations, tokenize=True, return_dict=True, return_tensors="pt", add_generation_prompt=True,
        processor_kwargs={"padding": True},
    )


def test_forward_backward_reaches_projector_and_lm(tiny_llava_med):
    model, processor = build_tiny_llava_med(seed=1)
    model.train()
    batch = _inputs(processor, ["What is shown?", "Which modality is this image?"])
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    out = model(**batch, labels=labels)
    assert out.logits.shape[:2] == batch["input_ids"].shape
    out.loss.backward()
    assert model.model.multi_modal_projector.linear_1.weight.grad.abs().sum() > 0
    assert model.model.language_model.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0
    assert model.model.vision_tower.encoder.layers[0].mlp.fc1.weight.grad.abs().sum() > 0


def test_linear_projector_variant():
    """LLaVA-Med v1.0's projector: one Linear(vision width -> LM width) on the CLS-less second-to-last CLIP layer."""
    model, processor = build_tiny_llava_med(projector_type="linear", vision_config=dict(hidden_size=48))
    projector = model.model.multi_modal_projector
    assert isinstance(projector, LlavaMedLinearProjector) and not hasattr(projector, "linear_2")
    weight, bias = projector.linear_1.weight, projector.linear_1.bias
    assert weight.shape == (32, 48) and bias.shape == (32,)  # (LM hidden, vision hidden), as `mm_projector` in v1.0
    seen = []
    projector.register_forward_hook(lambda module, args, output: seen.append((args[0], output)))
    batch = _inputs(processor, ["What?"])
    with torch.no_grad():
        model(**batch)
        tower = model.model.vision_tower(batch["pixel_values"], output_hidden_states=True).hidden_states
    (features, projected), = seen
    assert features.shape == (1, 16, 48) and projected.shape == (1, 16, 32)
    torch.testing.assert_close(features, tower[-2][:, 1:])
    torch.testing.assert_close(projected, features @ weight.T + bias)


def test_image_features_replace_placeholders(tiny_llava_med):
    model, processor = tiny_llava_med
    batch = _inputs(processor, ["What?"])
    with torch.no_grad():
        base = model(**batch).logits
        other = dict(batch, pixel_values=batch["pixel_values"] + 1.0)
        changed = model(**other).logits
    assert not torch.allclose(base, changed)


def test_several_images_per_sample(tiny_llava_med):
    model, processor = tiny_llava_med
    batch = _inputs(processor, ["Compare these.", "And these?"], images_per_sample=2)
    assert batch["pixel_values"].shape[0] == 4
    assert (batch["input_ids"] == model.config.image_token_id).sum().item() == 4 * 16
    with torch.no_grad():
        assert model(**batch).logits.shape[0] == 2


def test_placeholder_feature_mismatch_is_an_error(tiny_llava_med):
    model, processor = tiny_llava_med
    batch = _inputs(processor, ["What?"])
    batch["input_ids"] = batch["input_ids"].clone()
    batch["input_ids"][0, -1] = model.config.image_token_id
    with pytest.raises(Exception, match="do not match"):
        model(**batch)


def test_save_pretrained_round_trip_is_bit_exact(tmp_path, tiny_llava_med):
    model, processor = tiny_llava_med
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = AutoModelForImageTextToText.from_pretrained(tmp_path)
    assert type(loaded) is LlavaMedForConditionalGeneration
    original, reloaded = model.state_dict(), loaded.state_dict()
    assert original.keys() == reloaded.keys()
    assert all(torch.equal(original[k], reloaded[k]) for k in original)
    batch = _inputs(processor, ["What?"])
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, loaded(**batch).logits)


def test_auto_classes_resolve(tmp_path, tiny_llava_med):
    model, processor = tiny_llava_med
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert type(AutoConfig.from_pretrained(tmp_path)) is LlavaMedConfig
    assert type(AutoModel.from_pretrained(tmp_path)) is LlavaMedModel
    assert type(AutoProcessor.from_pretrained(tmp_path)) is LlavaMedProcessor
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "llava_med"
    assert config["auto_map"]["AutoModelForImageTextToText"] == "modeling_llava_med.LlavaMedForConditionalGeneration"
    for module in ("configuration_llava_med.py", "modeling_llava_med.py", "processing_llava_med.py"):
        assert (tmp_path / module).exists()


def test_registration_is_idempotent():
    import hf_medvlm

    hf_medvlm.register_auto_classes()
    hf_medvlm.register_auto_classes()
    assert AutoConfig.for_model("llava_med").__class__ is LlavaMedConfig


def test_llava_layout_weights_load_without_reinitialisation(tmp_path, tiny_llava_med):
    """A stock Llava checkpoint (llava-hf on-disk layout) loads into LlavaMed with every tensor intact."""
    model, _ = tiny_llava_med
    llava_config = LlavaConfig(**{k: v for k, v in model.config.to_dict().items()
                                  if k in ("vision_config", "text_config", "image_token_index")})
    llava = LlavaForConditionalGeneration(llava_config)
    llava.load_state_dict(model.state_dict())
    llava.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config.update(model_type="llava_med", architectures=["LlavaMedForConditionalGeneration"])
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = LlavaMedForConditionalGeneration.from_pretrained(tmp_path)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())


def test_from_vision_and_text_pretrained_uses_llava_med_projector_init(tmp_path):
    vision = CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                              num_attention_heads=2, image_size=32, patch_size=8))
    lm = AutoModelForCausalLM.from_config(MistralConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                                        num_attention_heads=4, num_key_value_heads=2,
                                                        vocab_size=32000, sliding_window=None))
    vision.save_pretrained(tmp_path / "vision")
    lm.save_pretrained(tmp_path / "lm")
    processor = LlavaMedProcessor.from_tokenizer(load_llama2_tokenizer(), image_size=32, patch_size=8)
    model = LlavaMedForConditionalGeneration.from_vision_and_text_pretrained(
        str(tmp_path / "vision"), str(tmp_path / "lm"), tokenizer=processor.tokenizer
    )
    projector = model.model.multi_modal_projector
    assert torch.count_nonzero(projector.linear_2.weight) == 0
    embeddings = model.get_input_embeddings().weight
    assert embeddings.shape[0] == 32064 and model.config.image_token_id == 32000
    assert torch.allclose(projector.linear_2.bias, embeddings.mean(dim=0), atol=1e-6)
    assert torch.equal(embeddings[:32000], lm.get_input_embeddings().weight)
    assert torch.equal(model.model.vision_tower.embeddings.patch_embedding.weight,
                       vision.embeddings.patch_embedding.weight)
    with torch.no_grad():
        assert torch.isfinite(model(**_inputs(processor, ["What?"])).logits).all()


def _conversation(question, image):
    return [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": question}]}]


def test_batched_generation_matches_one_at_a_time(tiny_llava_med):
    model, processor = tiny_llava_med
    questions = ["What is shown?", "Is there contrast in this abdominal scan?", "Modality?", "Which organ?"]
    conversations = [_conversation(q, make_rgb_image(40 + 8 * i, 32, seed=i)) for i, q in enumerate(questions)]
    kwargs = dict(max_new_tokens=8, do_sample=False, min_new_tokens=8)
    template = dict(tokenize=True, return_dict=True, return_tensors="pt", add_generation_prompt=True)
    batch = processor.apply_chat_template(conversations, processor_kwargs={"padding": True}, **template)
    assert (batch["attention_mask"] == 0).any()  # the batch really is padded
    with torch.no_grad():
        batched = model.generate(**batch, **kwargs)[:, batch["input_ids"].shape[1]:]
        for i, conversation in enumerate(conversations):
            single = processor.apply_chat_template([conversation], **template)
            single_out = model.generate(**single, **kwargs)[:, single["input_ids"].shape[1]:]
            assert batched[i].tolist() == single_out[0].tolist(), f"sample {i}"


def test_generation_stops_at_eos():
    model, processor = build_tiny_llava_med(seed=3)
    eos = processor.tokenizer.eos_token_id
    head = torch.nn.Linear(model.lm_head.in_features, model.lm_head.out_features, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[eos] = 10.0  # every position now predicts </s>
    model.lm_head = head
    batch = _inputs(processor, ["What?"])
    out = model.generate(**batch, max_new_tokens=10, do_sample=False)
    assert out.shape[1] - batch["input_ids"].shape[1] == 1 and out[0, -1].item() == eos


def _loss_and_grads(model, batch):
    model.train()
    loss = model(**batch, labels=batch["input_ids"]).loss
    loss.backward()
    return loss.detach(), {name: p.grad for name, p in model.named_parameters() if p.grad is not None}


def test_gradient_checkpointing_and_sdpa_give_the_same_loss_and_gradients():
    model, processor = build_tiny_llava_med(seed=2)
    model.config._attn_implementation = "sdpa"
    reference = copy.deepcopy(model)
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    batch = _inputs(processor, ["What?"])
    calls = []
    # A pre-hook: torch's non-reentrant checkpoint stops the recompute as soon as the last saved tensor is rebuilt,
    # inside the MLP, so a post-forward hook on it would not fire the second time.
    model.model.language_model.layers[1].mlp.register_forward_pre_hook(lambda *args: calls.append(1))
    loss, grads = _loss_and_grads(model, batch)
    assert len(calls) == 2  # the layer ran again in the backward pass: checkpointing is really on
    expected_loss, expected_grads = _loss_and_grads(reference, batch)
    torch.testing.assert_close(loss, expected_loss)
    assert grads.keys() == expected_grads.keys() and "model.language_model.layers.0.mlp.up_proj.weight" in grads
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected_grads[name], msg=name)


def test_bf16_loading(tmp_path, tiny_llava_med):
    model, processor = tiny_llava_med
    model.save_pretrained(tmp_path)
    loaded = LlavaMedForConditionalGeneration.from_pretrained(tmp_path, dtype=torch.bfloat16,
                                                              attn_implementation="sdpa")
    assert loaded.dtype == torch.bfloat16
    batch = _inputs(processor, ["What?"])
    with torch.no_grad():
        logits = loaded(**batch).logits
        expected = model(**batch).logits
    assert logits.dtype == torch.bfloat16
    # bf16 keeps 8 significant bits: the logits (|x| < 1 here) agree with fp32 to a few bf16 steps, not exactly.
    torch.testing.assert_close(logits.float(), expected, atol=2e-2, rtol=2e-2)


def test_pipeline_image_text_to_text_answers_as_generate(tmp_path, tiny_llava_med):
    model, processor = tiny_llava_med
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    pipe = pipeline("image-text-to-text", model=str(tmp_path))
    messages = [{"role": "user", "content": [{"type": "image", "image": make_rgb_image()},
                                             {"type": "text", "text": "What is shown?"}]}]
    result = pipe(text=messages, max_new_tokens=4, do_sample=False)
    inputs = processor.apply_chat_template([messages], tokenize=True, return_dict=True, return_tensors="pt",
                                           add_generation_prompt=True)
    with torch.no_grad():
        tokens = model.generate(**inputs, max_new_tokens=4, do_sample=False)[0, inputs["input_ids"].shape[1]:]
    expected = processor.decode(tokens, skip_special_tokens=True)
    assert expected.strip()  # the tiny model does answer something, so the comparison means something
    assert result[0]["generated_text"][:-1] == messages
    assert result[0]["generated_text"][-1] == {"role": "assistant", "content": expected}


REMOTE_CODE_CHECK = textwrap.dedent(
    """
    import sys
    sys.modules["hf_medvlm"] = None  # make `import hf_medvlm` fail even where the package is installed
    try:
        import hf_medvlm  # noqa: F401
        raise SystemExit("hf_medvlm should not be importable here")
    except ImportError:
        pass
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor
    path = sys.argv[1]
    model = AutoModelForImageTextToText.from_pretrained(path, trust_remote_code=True)
    processor = AutoProcessor.from_pretrained(path, trust_remote_code=True)
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    batch = torch.load(sys.argv[2])
    with torch.no_grad():
        torch.save(model(**batch).logits, sys.argv[3])
    print(type(processor).__name__)
    """
)


def test_remote_code_loads_without_the_package(tmp_path, tiny_llava_med):
    model, processor = tiny_llava_med
    model.save_pretrained(tmp_path / "ckpt")
    processor.save_pretrained(tmp_path / "ckpt")
    batch = dict(_inputs(processor, ["What is shown?"]))
    torch.save(batch, tmp_path / "batch.pt")
    script = tmp_path / "check.py"
    script.write_text(REMOTE_CODE_CHECK)
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "ckpt"), str(tmp_path / "batch.pt"), str(tmp_path / "out.pt")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "LlavaMedProcessor" in proc.stdout
    with torch.no_grad():
        assert torch.equal(torch.load(tmp_path / "out.pt"), model(**batch).logits)


# --------------------------------------------------------------------------------------------- transformers' Llava tests
# Ports of the checks in transformers' `tests/models/llava` model test that LlavaMed failed (issue 14, item 4).


def test_generative_class_lists_generation_mixin():
    """`test_inherits_generation_mixin`: transformers requires generative classes to list GenerationMixin."""
    assert GenerationMixin in LlavaMedForConditionalGeneration.__bases__


def _stock_llava_config(config):
    return LlavaConfig(**{k: v for k, v in config.to_dict().items()
                          if k in ("vision_config", "text_config", "image_token_index")})


def test_saved_checkpoint_has_stock_llava_layout_and_stock_reader_loads_it(tmp_path, tiny_llava_med):
    """`test_reverse_loading_mapping`, plus a strict load of the saved LlavaMed weights by stock Llava."""
    model, processor = tiny_llava_med
    model.save_pretrained(tmp_path / "med")
    stock = LlavaForConditionalGeneration(_stock_llava_config(model.config))
    stock.load_state_dict(model.state_dict())
    stock.save_pretrained(tmp_path / "stock")
    saved = load_file(tmp_path / "med" / "model.safetensors")
    assert sorted(saved) == sorted(load_file(tmp_path / "stock" / "model.safetensors"))
    assert "language_model.model.embed_tokens.weight" in saved and "language_model.lm_head.weight" in saved
    for conversion in get_model_conversion_mapping(model, add_legacy=False):
        # every renaming rule must be reversed onto at least one saved key (PrefixChange only applies to old layouts)
        if isinstance(conversion, WeightRenaming) and not isinstance(conversion, PrefixChange):
            for pattern in conversion.source_patterns:
                assert any(re.search(pattern, key) for key in saved), (pattern, conversion)
    reader, info = LlavaForConditionalGeneration.from_pretrained(
        tmp_path / "med", config=_stock_llava_config(model.config), output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    batch = _inputs(processor, ["What?"])
    with torch.no_grad():
        assert torch.equal(reader.eval()(**batch).logits, model(**batch).logits)
    reloaded = LlavaMedForConditionalGeneration.from_pretrained(tmp_path / "med")
    reloaded.save_pretrained(tmp_path / "again")
    again = load_file(tmp_path / "again" / "model.safetensors")
    assert saved.keys() == again.keys() and all(torch.equal(saved[k], again[k]) for k in saved)


@pytest.mark.parametrize("model_class", [LlavaMedForConditionalGeneration, LlavaMedModel])
def test_missing_weights_are_initialised_as_at_construction(model_class):
    """`test_can_init_all_missing_weights`: `from_pretrained` with no weights must initialise every tensor the way
    `__init__` does. It did not for CLIP's attention/MLP Linears (generic std 0.02 instead of CLIP's)."""
    wide_clip = {"hidden_size": 256, "intermediate_size": 512, "num_attention_heads": 4}
    config = tiny_llava_med_config(vision_config=wide_clip)
    torch.manual_seed(0)
    built = model_class(copy.deepcopy(config)).state_dict()
    loaded = model_class.from_pretrained(None, config=copy.deepcopy(config), state_dict={}).state_dict()
    assert built.keys() == loaded.keys()
    for key, value in built.items():
        if value.std() == 0:  # constant inits (norm weights, biases) must match exactly
            assert torch.equal(value, loaded[key]), key
        elif value.numel() >= 4096:  # random inits: same distribution (CLIP std 0.031-0.0625 vs generic 0.02)
            assert 0.85 < loaded[key].std() / value.std() < 1.15, (key, float(value.std()), float(loaded[key].std()))
