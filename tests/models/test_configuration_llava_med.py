import pytest

from hf_medvlm import LlavaMedConfig
from hf_medvlm.testing import tiny_llava_med_config


def test_defaults_describe_llava_med_v15():
    config = LlavaMedConfig()
    text, vision = config.text_config, config.vision_config
    assert config.model_type == "llava_med"
    assert (text.model_type, text.hidden_size, text.intermediate_size) == ("mistral", 4096, 14336)
    assert (text.num_hidden_layers, text.num_attention_heads, text.num_key_value_heads) == (32, 32, 8)
    assert text.rope_parameters["rope_theta"] == 1e6 and text.sliding_window is None
    assert (vision.model_type, vision.image_size, vision.patch_size, vision.hidden_size) == (
        "clip_vision_model", 336, 14, 1024)
    assert config.projector_type == "mlp2x_gelu" and config.projector_hidden_act == "gelu"
    assert config.vision_feature_layer == -2 and config.vision_feature_select_strategy == "default"
    assert config.image_token_id == 32000 and config.image_aspect_mode == "pad"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"projector_type": "mlp3x"}, "projector_type"),
        ({"image_aspect_mode": "anyres"}, "image_aspect_mode"),
        ({"vision_feature_select_strategy": "cls_patch"}, "vision_feature_select_strategy"),
        ({"vision_feature_layer": 5}, "vision_feature_layer 5 is out of range"),
        ({"vision_feature_layer": -4}, "vision_feature_layer -4 is out of range"),
        ({"image_token_index": 40000}, "image_token_index 40000"),
        ({"projector_type": "linear", "vision_feature_layer": [-2, -1]}, "single vision_feature_layer"),
    ],
)
def test_inconsistent_values_raise_value_error(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_llava_med_config(**overrides)


def test_valid_edge_values_are_accepted():
    # The tiny tower has 2 layers, so hidden_states has 3 entries: -3..2 are valid.
    assert tiny_llava_med_config(vision_feature_layer=-3).vision_feature_layer == -3
    assert tiny_llava_med_config(projector_type="linear", image_aspect_mode="none").projector_type == "linear"


def test_config_round_trip(tmp_path):
    config = tiny_llava_med_config(projector_type="linear", added_tokens={"<image>": 32000})
    config.save_pretrained(tmp_path)
    loaded = LlavaMedConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
