import pytest
import torch
from transformers import AutoModel, AutoProcessor

from hf_medvlm.models.med_selector import MedSelectorConfig, MedSelectorModel
from hf_medvlm.selection.training import PairCollator

from .conftest import make_pairs


def test_save_and_load_round_trip_with_and_without_remote_code(tmp_path, tiny_selector):
    model, processor = tiny_selector
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert (tmp_path / "modeling_med_selector.py").is_file()  # remote code travels with the checkpoint
    batch = PairCollator(processor)(make_pairs(3, "human", seed=0))
    with torch.no_grad():
        expected = model(**batch).logits
        for kwargs in ({}, {"trust_remote_code": True}):
            loaded = AutoModel.from_pretrained(tmp_path, **kwargs)
            assert loaded.config.model_type == "med_selector"
            assert torch.allclose(loaded(**batch).logits, expected)
    assert AutoProcessor.from_pretrained(tmp_path).tokenizer("w1").input_ids == processor.tokenizer("w1").input_ids


def test_forward_shapes_and_features(tiny_selector):
    model, processor = tiny_selector
    batch = PairCollator(processor, human_weight=7.0)(make_pairs(4, "human", seed=0))
    assert batch["input_ids"].shape[0] == 8 and batch["pair_weights"].tolist() == [7.0] * 4
    out = model(**batch, output_features=True)
    assert out.logits.shape == (4, 2) and out.loss.ndim == 0
    assert out.features.shape == (8, 32)  # 16-d text + 16-d image projections
    single = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   pixel_values=batch["pixel_values"])
    assert single.logits.shape == (8,) and single.loss is None


def test_config_rejects_unknown_loss():
    with pytest.raises(ValueError, match="loss_type"):
        MedSelectorConfig(loss_type="hinge")
    tiny = dict(hidden_size=16, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2)
    encoder = {"model_type": "clip", "projection_dim": 8, "text_config": {**tiny, "vocab_size": 50},
               "vision_config": {**tiny, "image_size": 16, "patch_size": 8}}
    config = MedSelectorConfig(encoder_config=encoder, head_hidden_sizes=[4])
    assert (config.text_feature_dim, config.image_feature_dim) == (8, 8)
    assert MedSelectorModel(config).head[1].in_features == 16
