"""Each family's own chat template through TRL's vision collator: what is supervised, and how long each row is."""

from __future__ import annotations

import pytest

from hf_medvlm.commands.train import parse_args
from tests.families.conftest import FAMILIES, OTHER_FAMILIES, conversation_rows, tiny_family, to_dataset

ARGS = ["--model_name_or_path", "x", "--use_cpu", "true", "--bf16", "false", "--report_to", "none",
        "--assistant_only_loss", "true", "--max_length", "null"]


def _trainer_collator(family: str, tmp_path):
    """The collator `SFTTrainer` builds for this family (TRL swaps in the training variant of its own template)."""
    from hf_medvlm.training.trainer import MedVLMSFTTrainer

    model, processor = tiny_family(family)
    args = parse_args([*ARGS, "--output_dir", str(tmp_path)])[2]
    trainer = MedVLMSFTTrainer(model=model, args=args, train_dataset=to_dataset(conversation_rows()),
                               processing_class=processor)
    return trainer.data_collator, processor


@pytest.mark.parametrize("family", OTHER_FAMILIES)
def test_only_assistant_turns_and_their_end_of_turn_are_supervised(family, tmp_path):
    collator, processor = _trainer_collator(family, tmp_path)
    end_of_turn = FAMILIES[family][2]
    rows = conversation_rows()
    batch = collator([{"images": r["images"], "messages": r["messages"]} for r in rows])
    for row, ids, labels in zip(rows, batch["input_ids"], batch["labels"]):
        supervised = processor.tokenizer.decode(labels[labels != -100])
        answers = [m["content"][0]["text"] for m in row["messages"] if m["role"] == "assistant"]
        # Exactly each answer with the end-of-turn token (and the newline the template writes after it), in order:
        # no role marker, question, system prompt or image token.
        expected = "".join(f"{a}{end_of_turn}\n" for a in answers)
        assert supervised.replace(" ", "") == expected.replace(" ", ""), row["id"]
        image_ids = {processor.tokenizer.convert_tokens_to_ids(processor.image_token)}
        assert not any(int(t) in image_ids for t in labels[labels != -100])
        assert len(labels) == len(ids)


@pytest.mark.parametrize("family", FAMILIES)
def test_measured_length_is_the_collated_length(family, tmp_path):
    """The length pass counts what TRL's collator builds, with each processor's real image expansion."""
    from hf_medvlm.training.length_policy import measure

    collator, processor = _trainer_collator(family, tmp_path)
    rows = conversation_rows()
    collated = [int(collator([{"images": r["images"], "messages": r["messages"]}])["attention_mask"].sum())
                for r in rows]
    assert measure(to_dataset(rows), processor) == (collated, [1, 2, 3, 0])


@pytest.mark.parametrize("family, variable", [("llava_med", False), ("qwen2_5_vl", True), ("smolvlm", True),
                                              ("gemma3", False)])
def test_image_token_count_follows_the_image_size_where_the_processor_does(family, variable):
    from hf_medvlm.training.image_tokens import ImageExpansion
    from hf_medvlm.training.length_policy import image_token_count
    from tests.conftest import make_rgb_image

    processor = tiny_family(family)[1]
    expansion = ImageExpansion(processor)
    assert expansion.fixed is not variable
    counts = set()
    for height, width in [(20, 20), (64, 64), (40, 100), (300, 120)]:
        image = make_rgb_image(width, height)
        real = processor(text=[processor.image_token], images=[[image]], add_special_tokens=False)["input_ids"][0]
        assert len(expansion.ids((height, width))) == len(real), (height, width)
        counts.add(len(real))
    assert (len(counts) > 1) is variable
    if variable:
        with pytest.raises(ValueError, match="depends on each image's size"):
            image_token_count(processor)
    else:
        assert image_token_count(processor) == len(expansion.ids())


def test_sizes_are_read_from_headers_with_exif_rotation():
    import io

    from PIL import Image

    from hf_medvlm.training.image_tokens import image_size

    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: datasets decodes it as 30 wide, 50 high
    Image.new("RGB", (50, 30)).save(buffer, format="JPEG", exif=exif)
    assert image_size({"bytes": buffer.getvalue(), "path": None}) == (50, 30)


@pytest.mark.parametrize("family", ["qwen2_5_vl", "smolvlm"])
def test_rows_are_trimmed_with_their_own_image_sizes(family):
    """trim_rounds on a variable-resolution processor: the kept prefix is measured with the sizes of its images."""
    from hf_medvlm.training.length_policy import fit_to_length, measure

    processor = tiny_family(family)[1]
    rows = conversation_rows()
    lengths, _ = measure(to_dataset(rows), processor)
    limit = lengths[2] - 1  # the three-round row no longer fits, its first round does
    data, report = fit_to_length(to_dataset(rows), processor, max_length=limit, policy="trim_rounds")
    assert report.trimmed == 1 and report.rows_out == 4
    assert measure(data, processor)[0] == report.lengths and max(report.lengths) <= limit
    assert len(data[2]["images"]) < 3


@pytest.mark.parametrize("family", OTHER_FAMILIES)
def test_stage_one_and_llava_med_templates_are_llava_meds(family):
    from hf_medvlm.training.sft import fit_stage_to_family

    *_, stage = parse_args([*ARGS, "--output_dir", "/tmp/unused", "--stage", "alignment"])
    with pytest.raises(ValueError, match=f"stage 'alignment' is LLaVA-Med's stage 1.*{family}"):
        fit_stage_to_family(stage, family)
    *_, stage = parse_args([*ARGS, "--output_dir", "/tmp/unused", "--chat_template_name", "vicuna_v1"])
    with pytest.raises(ValueError, match="chat_template_name 'vicuna_v1' is a LlavaMed template"):
        fit_stage_to_family(stage, family)
    *_, stage = parse_args([*ARGS, "--output_dir", "/tmp/unused"])
    fit_stage_to_family(stage, family)
    assert stage.chat_template_name is None and stage.freeze_modules == ["vision_tower"]
    *_, stage = parse_args([*ARGS, "--output_dir", "/tmp/unused", "--stage", "alignment"])
    fit_stage_to_family(stage, "llava_med")  # unchanged for LlavaMed
    assert stage.chat_template_name == "plain"


def test_processor_kwargs_reach_the_processor(family_checkpoints):
    """Qwen2-VL's resolution (`max_pixels`) set in a recipe is what the processor, and so the length pass, uses."""
    from hf_medvlm.training.image_tokens import ImageExpansion
    from hf_medvlm.training.model_setup import load_model_and_processor
    from hf_medvlm.training.sft import fit_stage_to_family

    argv = [*ARGS[2:], "--output_dir", "/tmp/unused", "--model_name_or_path", str(family_checkpoints("qwen2_5_vl")),
            "--processor_kwargs", '{"max_pixels": 1024}']
    *_, model_args, stage = parse_args(argv)
    fit_stage_to_family(stage, "qwen2_5_vl")
    _, processor = load_model_and_processor(model_args, stage)
    assert processor.image_processor.size.longest_edge == 1024  # transformers 5 keeps max_pixels there
    default = ImageExpansion(tiny_family("qwen2_5_vl")[1])
    assert len(ImageExpansion(processor).ids((64, 64))) < len(default.ids((64, 64)))
    with pytest.raises(ValueError, match="processor_kwargs applies to other families"):
        fit_stage_to_family(stage, "llava_med")


def test_a_typed_placeholder_is_named_before_training(family_checkpoints):
    """A question with a literal image placeholder would crash the collator mid-epoch; the length pass names it."""
    from hf_medvlm.training.length_policy import measure

    processor = tiny_family("qwen2_5_vl")[1]
    rows = conversation_rows()
    rows[1]["messages"][0]["content"][-1]["text"] = "Compare <|image_pad|> with the other one."
    with pytest.raises(ValueError, match="train data, row 'two-sizes': the rendered chat has 3 <\\|image_pad\\|>"):
        measure(to_dataset(rows), processor)
