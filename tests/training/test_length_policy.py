"""Multi-image rows vs `max_length`, at the real geometry: 336 px images, patch 14, 576 placeholder tokens per image.

The model is a tiny LlavaMed whose vision tower has CLIP-336/14's geometry (1 layer, tiny widths) and a 1-layer LM,
so a 2048-token training step runs on CPU.
"""

from __future__ import annotations

from pathlib import Path

import datasets
import pytest

from hf_medvlm.commands.train import parse_args
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
    truncating = DataCollatorForVisionLanguageModeling(processor, max_length=MAX_LENGTH, assistant_only_loss=True)
    cut = truncating([dict(row)])
    assert full["input_ids"].shape[1] > MAX_LENGTH
    assert cut["input_ids"].shape[1] == MAX_LENGTH
    assert int((cut["input_ids"] == model.config.image_token_index).sum()) == 3 * 576
    assert cut["input_ids"][0, -1] != processor.tokenizer.eos_token_id


# ------------------------------------------------------------------------------------------ measuring a row's length


def _v1_processor():
    """A LlavaMed v1.0-style processor: each image wrapped in `<im_start>` ... `<im_end>`."""
    from hf_medvlm.models.llava_med import LlavaMedProcessor
    from hf_medvlm.testing import TINY_IMAGE_SIZE, TINY_PATCH, load_llama2_tokenizer

    tokenizer = load_llama2_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<im_start>", "<im_end>"]},
                                 replace_extra_special_tokens=False)
    return LlavaMedProcessor.from_tokenizer(tokenizer, image_size=TINY_IMAGE_SIZE, patch_size=TINY_PATCH,
                                            chat_template="llava_v0", image_start_token="<im_start>",
                                            image_end_token="<im_end>")


def test_image_token_count_comes_from_the_processor(tiny_llava_med):
    from hf_medvlm.training.length_policy import image_token_count

    assert image_token_count(real_geometry_llava_med()[1]) == 576
    assert image_token_count(tiny_llava_med[1]) == 16
    assert image_token_count(_v1_processor()) == 18


@pytest.mark.parametrize("template", ["mistral_instruct", "plain", "vicuna_v1", "llava_v0", "v1.0 wrappers"])
def test_measured_length_is_the_collated_length(template):
    """The length pass counts exactly what TRL's collator produces (no truncation), for every packaged template."""
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    from hf_medvlm.models.llava_med import load_chat_template
    from hf_medvlm.testing import build_tiny_llava_med
    from hf_medvlm.training.length_policy import measure

    if template == "v1.0 wrappers":
        processor = _v1_processor()
    else:
        processor = build_tiny_llava_med()[1]
        processor.chat_template = load_chat_template(template)
    rows = [image_row("a", [1]), image_row("b", [4]), image_row("c", [2, 0, 3]), image_row("d", [0])]
    # TRL's string-content form: the images go before the first user text.
    plain = [{"images": image_row("e", [2])["images"], "messages": [
        {"role": "user", "content": "Compare these."}, {"role": "assistant", "content": "They differ."}]}]
    collator = DataCollatorForVisionLanguageModeling(processor, assistant_only_loss=True)
    cases = ((to_dataset(rows), rows, [1, 4, 5, 0]), (datasets.Dataset.from_list(plain), plain, [2]))
    for dataset, raw, counts in cases:
        expected = [int(collator([dict(r)])["attention_mask"].sum()) for r in raw]
        assert measure(dataset, processor) == (expected, counts)


def test_measuring_in_worker_processes_gives_the_same_lengths(tiny_llava_med):
    from hf_medvlm.training.length_policy import measure

    dataset = to_dataset([image_row(f"r{i}", [i % 3, 1]) for i in range(12)])
    assert measure(dataset, tiny_llava_med[1], batch_size=4, num_proc=2) == measure(dataset, tiny_llava_med[1])


# ---------------------------------------------------------------------------------------- the policies at 336 px / 14


@pytest.fixture(scope="module")
def real_processor():
    return real_geometry_llava_med()[1]


def _mixed_rows() -> list[dict]:
    return [
        image_row("fits", [3]),  # 3 x 576 + text: fits 2048
        image_row("four", [4]),  # PubMedVision-like: one round, 4 images
        image_row("long-answer", [3], answer="lesion " * 400),  # fits only without its answer's end
        image_row("rounds", [2, 3]),  # round 1 with 2 images fits; round 2 adds 3 more
    ]


def test_skip_leaves_out_rows_that_cannot_fit_and_counts_them(real_processor):
    from hf_medvlm.training.length_policy import fit_to_length

    data, report = fit_to_length(to_dataset(_mixed_rows()), real_processor, max_length=MAX_LENGTH, policy="skip")
    assert data["id"] == ["fits"]
    assert (report.rows_in, report.rows_out, report.skipped_over_max_length, report.trimmed) == (4, 1, 3, 0)
    assert report.examples == ["four", "long-answer", "rounds"]
    assert len(report.lengths) == 1 and 3 * 576 < report.lengths[0] == report.longest <= MAX_LENGTH
    assert "3 skipped" in report.summary()


def test_trim_rounds_keeps_the_leading_rounds_with_exactly_their_images(real_processor):
    from hf_medvlm.training.length_policy import fit_to_length, measure

    rows = _mixed_rows()
    data, report = fit_to_length(to_dataset(rows), real_processor, max_length=MAX_LENGTH, policy="trim_rounds")
    assert data["id"] == ["fits", "rounds"]  # order kept; one-round rows that cannot fit are skipped
    trimmed = data[1]
    assert [m["role"] for m in trimmed["messages"]] == ["user", "assistant"]
    assert trimmed["messages"][1]["content"][0]["text"].endswith("(0)")
    assert len(trimmed["images"]) == 2
    raw = data.cast_column("images", datasets.List(datasets.Image(decode=False)))[1]["images"]
    original = to_dataset(rows).cast_column("images", datasets.List(datasets.Image(decode=False)))[3]["images"]
    assert [i["bytes"] for i in raw] == [i["bytes"] for i in original[:2]]  # copied, not re-encoded
    assert data.features == to_dataset(rows).features
    assert (report.skipped_over_max_length, report.trimmed) == (2, 1)
    assert (report.rounds_dropped, report.images_dropped) == (1, 3)
    assert measure(data, real_processor) == (report.lengths, [3, 2]) and max(report.lengths) <= MAX_LENGTH


def test_trim_rounds_keeps_as_many_rounds_as_fit(real_processor):
    from hf_medvlm.training.length_policy import fit_to_length

    rows = [image_row("three-rounds", [1, 1, 4]), image_row("text-only", [0] * 6, answer="word " * 500)]
    data, report = fit_to_length(to_dataset(rows), real_processor, max_length=MAX_LENGTH, policy="trim_rounds")
    assert [len(m) for m in data["messages"]] == [4, 6]  # 2 of 3 rounds; 3 of 6 rounds of ~500 tokens each
    assert [len(i) for i in data["images"]] == [2, 0]
    assert (report.trimmed, report.rounds_dropped, report.images_dropped, report.skipped) == (2, 4, 4, 0)


def test_error_names_the_rows_before_training(real_processor):
    from hf_medvlm.training.length_policy import fit_to_length

    with pytest.raises(ValueError, match=r"3 of 4 rows exceed max_length 2048.*'four' \(23\d\d tokens, 4 images\)"):
        fit_to_length(to_dataset(_mixed_rows()), real_processor, max_length=MAX_LENGTH, policy="error")


def test_max_images_per_sample_without_max_length(real_processor):
    from hf_medvlm.training.length_policy import fit_to_length

    rows = _mixed_rows()
    data, report = fit_to_length(to_dataset(rows), real_processor, max_length=None, max_images_per_sample=3,
                                 policy="skip")
    assert data["id"] == ["fits", "long-answer"]
    assert (report.skipped_over_max_images, report.skipped_over_max_length) == (2, 0)
    data, report = fit_to_length(to_dataset(rows), real_processor, max_length=None, max_images_per_sample=3,
                                 policy="trim_rounds")
    assert data["id"] == ["fits", "long-answer", "rounds"] and len(data[2]["images"]) == 2


def test_no_limits_means_no_pass(real_processor):
    from hf_medvlm.training.length_policy import fit_to_length

    dataset = to_dataset(_mixed_rows())
    data, report = fit_to_length(dataset, real_processor, max_length=None)
    assert data is dataset and report.lengths == [] and report.rows_out == 4


def test_a_row_whose_markers_and_images_disagree_is_named(real_processor):
    from hf_medvlm.training.length_policy import fit_to_length

    rows = [image_row("ok", [1]), image_row("bad", [2])]
    rows[1]["images"] = rows[1]["images"][:1]
    with pytest.raises(ValueError, match="train data, row 'bad'"):
        fit_to_length(to_dataset(rows), real_processor, max_length=MAX_LENGTH)


def test_stage_arguments_take_the_policy():
    *_, stage = parse_args([*ARGS, "--output_dir", "/tmp/unused", "--length_policy", "skip",
                            "--max_images_per_sample", "8"])
    assert (stage.length_policy, stage.max_images_per_sample) == ("skip", 8)
    assert parse_args([*ARGS, "--output_dir", "/tmp/unused"])[-1].length_policy == "trim_rounds"
    with pytest.raises(SystemExit):
        parse_args([*ARGS, "--output_dir", "/tmp/unused", "--length_policy", "truncate"])
    with pytest.raises(ValueError, match="max_images_per_sample"):
        parse_args([*ARGS, "--output_dir", "/tmp/unused", "--max_images_per_sample", "0"])


# ---------------------------------------------------------------------------- one real training step after the pass


@pytest.mark.parametrize("policy", ["skip", "trim_rounds"])
def test_one_training_step_at_max_length_2048(policy, tmp_path):
    """Fitted rows go through the real processor, TRL's collator (truncation on) and a training step of the tiny LM."""
    from hf_medvlm.training.length_policy import LengthReportCallback, fit_to_length

    model, processor = real_geometry_llava_med()
    data, report = fit_to_length(to_dataset(_mixed_rows()), processor, max_length=MAX_LENGTH, policy=policy)
    args = training_args(tmp_path, "--max_steps", "1", "--per_device_train_batch_size", str(len(data)))
    trainer = MedVLMSFTTrainer(model=model, args=args, train_dataset=data, processing_class=processor,
                               group_by_modality_length=True, train_lengths=report.lengths,
                               callbacks=[LengthReportCallback([report])])
    batch = next(iter(trainer.get_train_dataloader()))
    image_tokens = (batch["input_ids"] == model.config.image_token_index).sum(dim=1).tolist()
    assert sorted(image_tokens) == sorted(576 * len(r) for r in data["images"])
    assert batch["input_ids"].shape[1] == max(report.lengths) <= MAX_LENGTH  # nothing was cut
    assert trainer._get_train_sampler().lengths.tolist() == report.lengths  # the pass's lengths, not re-measured
    before = model.model.multi_modal_projector.linear_1.weight.detach().clone()
    trainer.train()
    assert trainer.state.global_step == 1
    assert not model.model.multi_modal_projector.linear_1.weight.detach().equal(before)
    logged = next(h for h in trainer.state.log_history if "length_policy/train/rows_in" in h)
    assert logged["length_policy/train/rows_out"] == len(data) == (1 if policy == "skip" else 2)


# ------------------------------------------------------------------------------------------ through `hf-medvlm train`


@pytest.mark.integration
def test_train_command_fits_the_rows_and_reports_them(tiny_checkpoint, tmp_path, caplog):
    """The recipe fields reach the pass; counts land in the log and in trainer_state.json (tiny: 16 tokens/image)."""
    import json
    import logging

    from hf_medvlm.commands.train import main

    data_dir = tmp_path / "data"
    rows = [image_row("one", [1]), image_row("five", [5]), image_row("rounds", [1, 4])]
    to_dataset(rows).to_parquet(str(data_dir / "train-00000-of-00001.parquet"))
    out = tmp_path / "out"
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "tiny" / "sft" / "stage2.yaml"
    with caplog.at_level(logging.INFO, logger="hf_medvlm.training.length_policy"):
        main(["--config", str(recipe), "--model_name_or_path", str(tiny_checkpoint), "--dataset_name", str(data_dir),
              "--dataset_config", "default", "--output_dir", str(out), "--max_length", "64", "--max_steps", "1",
              "--save_strategy", "no", "--length_policy", "trim_rounds"])
    assert "train: 3 rows -> 2 (trim_rounds; max_length 64" in caplog.text
    assert "1 skipped (1 over max_length" in caplog.text and "1 trimmed (1 rounds, 4 images dropped)" in caplog.text
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    logged = next(h for h in history if "length_policy/train/rows_in" in h)
    assert (logged["length_policy/train/rows_out"], logged["length_policy/train/trimmed"]) == (2, 1)
    assert "length_policy: trim_rounds" in (out / "resolved_config.yaml").read_text()


def test_eval_split_gets_the_same_pass(real_processor):
    from hf_medvlm.training.length_policy import fit_splits_to_length

    train, evaluation, reports = fit_splits_to_length(
        to_dataset(_mixed_rows()[:2]), to_dataset(_mixed_rows()[::-1]), real_processor, max_length=MAX_LENGTH,
        policy="skip")
    assert (train["id"], evaluation["id"]) == (["fits"], ["fits"])
    assert [r.split for r in reports] == ["train", "eval"] and reports[1].skipped == 3
    with pytest.raises(ValueError, match="eval data: no row is left"):
        fit_splits_to_length(to_dataset(_mixed_rows()[:1]), to_dataset(_mixed_rows()[1:2]), real_processor,
                             max_length=MAX_LENGTH, policy="skip")
