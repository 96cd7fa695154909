"""Multi-image rows vs `max_length`, at the real geometry: 336 px images, patch 14, 576 placeholder tokens per image.

The model is a tiny LlavaMed whose vision tower has CLIP-336/14's geometry (1 layer, tiny widths) and a 1-layer LM, so a
2048-token training step runs on CPU.
"""

from __future__ import annotations

import datasets
import pytest

from hf_medvlm.sft import parse_args
from hf_medvlm.training.trainer import MedVLMSFTTrainer
from tests.conftest import make_rgb_image

MAX_LENGTH = 2048
ARGS = ["--model_name_or_path", "x", "--use_cpu", "true", "--bf16", "false", "--report_to", "none",
        "--save_strategy", "no", "--logging_steps", "1", "--assistant_only_loss", "true", "--seed", "0",
        "--per_device_train_batch_size", "1", "--learning_rate", "1e-3"]


def real_geometry_llava_med():
    """A tiny LlavaMed with CLIP-336/14's image geometry (576 positions per image), 1 vision and 1 LM layer."""
    from hf_medvlm.testing import build_tiny_llava_med

    return build_tiny_llava_med(
        vision_config=dict(image_size=336, patch_size=14, num_hidden_layers=1, hidden_size=16, intermediate_size=32),
        text_config=dict(num_hidden_layers=1, max_position_embeddings=4096),
    )


def image_row(row_id: str, images_per_round: list[int], answer: str = "The second image shows a lesion.") -> dict:
    """One training-schema row; round r asks about `images_per_round[r]` new images (PubMedVision: one round)."""
    messages, images = [], []
    for r, count in enumerate(images_per_round):
        images += [make_rgb_image(60 + len(images) + k, 50, seed=len(images) + k) for k in range(count)]
        user = [{"type": "image", "text": None}] * count + [{"type": "text", "text": f"Question {r}: compare them."}]
        messages += [{"role": "user", "content": user},
                     {"role": "assistant", "content": [{"type": "text", "text": f"{answer} ({r})"}]}]
    return {"id": row_id, "images": images, "messages": messages}


def to_dataset(rows: list[dict]) -> datasets.Dataset:
    from hf_medvlm.data.schema import TRAINING_FEATURES

    features = datasets.Features({k: TRAINING_FEATURES[k] for k in ("id", "images", "messages")})
    return datasets.Dataset.from_list(rows, features=features)


def training_args(tmp_path, *extra: str):
    return parse_args([*ARGS, "--output_dir", str(tmp_path), "--max_length", str(MAX_LENGTH), *extra])[2]


# ----------------------------------------------------------------------------- what TRL + transformers do on their own


def test_unfitted_four_image_row_crashes_training_mid_epoch(tmp_path):
    """Without a length pass, TRL's collator truncates to max_length and the processor refuses the cut placeholders.

    The crash comes from the data loader at whichever step draws the row: here after some steps were taken.
    """
    model, processor = real_geometry_llava_med()
    rows = [image_row(f"one-{i}", [1]) for i in range(5)]
    rows.insert(3, image_row("four", [4]))
    trainer = MedVLMSFTTrainer(model=model, args=training_args(tmp_path, "--num_train_epochs", "1"),
                               train_dataset=to_dataset(rows), processing_class=processor)
    with pytest.raises(ValueError, match="Mismatch in `image` token count"):
        trainer.train()
    assert 0 < trainer.state.global_step < len(rows)


def test_unfitted_long_answer_is_truncated_silently():
    """A 3-image row whose answer pushes it past max_length loses the answer's end and its EOS, without a word."""
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    model, processor = real_geometry_llava_med()
    row = image_row("three", [3], answer="lesion " * 400)
    full = DataCollatorForVisionLanguageModeling(processor, assistant_only_loss=True)([dict(row)])
    cut = DataCollatorForVisionLanguageModeling(processor, max_length=MAX_LENGTH, assistant_only_loss=True)([dict(row)])
    assert full["input_ids"].shape[1] > MAX_LENGTH
    assert cut["input_ids"].shape[1] == MAX_LENGTH
    assert int((cut["input_ids"] == model.config.image_token_index).sum()) == 3 * 576
    assert cut["input_ids"][0, -1] != processor.tokenizer.eos_token_id
