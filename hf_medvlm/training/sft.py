"""Supervised fine-tuning of vision-language models: LLaVA-Med's two-stage curriculum, LoRA/QLoRA and VQA fine-tunes.

`StageArguments` holds what TRL's dataclasses have no key for; `run_sft` is the flow behind `hf-medvlm train`
(`hf_medvlm/commands/train.py`). Which families train which stage, with which template: docs/training.md.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from transformers import TrainerCallback

from ..models.llava_med.configuration_llava_med import PROJECTOR_INITS
from ..models.llava_med.processing_llava_med import CHAT_TEMPLATE_NAMES
from .length_policy import LENGTH_POLICIES, LengthReportCallback, fit_splits_to_length
from .model_parts import PART_NAMES
from .model_setup import (
    check_quantization_supported,
    checkpoint_family,
    freeze_modules,
    load_model_and_processor,
    lora_config_for,
    train_embedding_rows,
    trainable_parameter_report,
)

__all__ = ["StageArguments", "STAGE_DEFAULTS", "check_args", "fit_stage_to_family", "build_trainer", "run_sft"]

logger = logging.getLogger(__name__)

# stage -> (frozen parts, chat template) by default; the `stage` and `chat_template_name` helps say why.
STAGE_DEFAULTS = {
    "alignment": (["vision_tower", "language_model"], "plain"),
    "instruct": (["vision_tower"], "mistral_instruct"),
}


@dataclass
class StageArguments:
    """What TRL's dataclasses have no key for: the curriculum stage and how the model is assembled and trained."""

    stage: str = field(
        default="instruct",
        metadata={"help": "'alignment' (LlavaMed stage 1: projector only, `plain` template) or 'instruct' (stage 2 "
                  "and VQA fine-tunes: LM + projector, tower frozen, assistant-only loss; LlavaMed with "
                  "`mistral_instruct`, other families with their own chat template).",
                  "choices": list(STAGE_DEFAULTS)},
    )
    freeze_modules: list[str] | None = field(
        default=None,
        metadata={"help": f"Parts kept frozen, from {sorted(PART_NAMES)}; default by stage "
                  "(alignment: vision_tower + language_model; instruct: vision_tower). Ignored with use_peft, where "
                  "only LoRA adapters and the projector train."},
    )
    projector_lr: float | None = field(
        default=None,
        metadata={"help": "Learning rate of the multimodal projector (LLaVA-1.5's mm_projector_lr); default: "
                  "learning_rate."},
    )
    chat_template_name: str | None = field(
        default=None,
        metadata={"help": f"LlavaMed only: packaged chat template used for training, one of {CHAT_TEMPLATE_NAMES}; "
                  "default by stage (alignment: plain; instruct: mistral_instruct). For stage 1, `llava_v0` is the "
                  "LLaVA-Med paper's (v1.0: v0 conversation with the description instruction; Appendix C.2 treats "
                  "dropping it as an ablation) and `plain` is LLaVA-1.5's (caption only, instruction dropped). Other "
                  "families train with the chat template their processor carries.",
                  "choices": list(CHAT_TEMPLATE_NAMES)},
    )
    vision_model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Build a fresh LlavaMed from this vision encoder (e.g. openai/clip-vit-large-patch14-336) "
                  "and text_model_name_or_path, with LLaVA-Med's projector init; replaces model_name_or_path."},
    )
    text_model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Causal LM (and its tokenizer) for the fresh model, e.g. mistralai/Mistral-7B-Instruct-v0.2."},
    )
    projector_type: str = field(
        default="mlp2x_gelu",
        metadata={"help": "Projector of a fresh model: 'mlp2x_gelu' (v1.5) or 'linear' (v1.0).",
                  "choices": ["mlp2x_gelu", "linear"]},
    )
    image_aspect_mode: str = field(
        default="pad",
        metadata={"help": "Image preprocessing of a fresh model: 'pad' to square (v1.5) or 'none' (v1.0).",
                  "choices": ["pad", "none"]},
    )
    projector_init: str = field(
        default="llava_med",
        metadata={"help": "Projector initialisation of a fresh model: 'llava_med' (v1.5: last layer weight 0, bias = "
                  "mean token embedding) or 'torch' (nn.Linear's own, as v1.0's projector).",
                  "choices": list(PROJECTOR_INITS)},
    )
    image_start_end_tokens: bool = field(
        default=False,
        metadata={"help": "Wrap each image's feature positions in `<im_start>` ... `<im_end>` (LLaVA-Med v1.0's "
                  "mm_use_im_start_end). A fresh model adds both tokens (mean-initialised rows); a checkpoint keeps "
                  "what its processor says."},
    )
    train_image_start_end_embeddings: bool = field(
        default=True,
        metadata={"help": "In the alignment stage, also train the input-embedding rows of `<im_start>`/`<im_end>` "
                  "(every other row stays fixed by gradient masking; lm_head stays frozen), as v1.0's stage 1 did. "
                  "Needs weight_decay 0."},
    )
    group_by_modality_length: bool = field(
        default=False,
        metadata={"help": "Batch samples of similar length and never mix image and text-only samples in one "
                  "optimizer step (LLaVA-1.5's group_by_modality_length, with a wider sort window)."},
    )
    length_policy: str = field(
        default="trim_rounds",
        metadata={"help": "Rows longer than max_length (image placeholders counted: 576 tokens per 336 px image) or "
                  "with more than max_images_per_sample images, decided before training: 'skip' them, 'trim_rounds' "
                  "(keep the leading user/assistant rounds that fit, with their images; skip the row if its first "
                  "round alone does not fit), or 'error' (list them and stop). Counts go to the log and "
                  "trainer_state.json. Images are never dropped from a round: answers name them by position.",
                  "choices": list(LENGTH_POLICIES)},
    )
    processor_kwargs: dict | str | None = field(
        default=None,
        metadata={"help": "Keyword arguments for AutoProcessor.from_pretrained of another family than LlavaMed, e.g. "
                  "{\"max_pixels\": 151200} (Qwen2-VL image resolution) or {\"size\": {\"longest_edge\": 1536}} "
                  "(SmolVLM image splitting); saved with the processor, so evaluation uses them too. A JSON string on "
                  "the command line."},
    )
    max_images_per_sample: int | None = field(
        default=None,
        metadata={"help": "Most images a training row may show (HuatuoGPT-Vision drops rows with more than 8); rows "
                  "with more are handled by length_policy. Default: no limit besides max_length."},
    )

    def __post_init__(self):
        if self.stage not in STAGE_DEFAULTS:
            raise ValueError(f"stage must be one of {tuple(STAGE_DEFAULTS)}, got {self.stage!r}")
        frozen, template = STAGE_DEFAULTS[self.stage]
        if self.freeze_modules is None:
            self.freeze_modules = list(frozen)
        # Known only once the checkpoint is: another family than LlavaMed drops a template that came from here.
        self.template_from_stage = self.chat_template_name is None
        self.chat_template_name = template if self.template_from_stage else self.chat_template_name
        if isinstance(self.processor_kwargs, str):
            self.processor_kwargs = json.loads(self.processor_kwargs)
        if self.max_images_per_sample is not None and self.max_images_per_sample < 1:
            raise ValueError(f"max_images_per_sample must be at least 1, got {self.max_images_per_sample}")


class _AlreadyAtMaxSteps(Exception):
    pass


class _StopAtMaxSteps(TrainerCallback):
    # transformers' Trainer checks max_steps only after a step, so a resume from the final checkpoint of a run that
    # ends mid-epoch would train one step more (and save checkpoint-N+1). The checkpoint is loaded by now.
    def on_step_begin(self, args, state, control, **kwargs):
        if 0 < state.max_steps <= state.global_step:
            raise _AlreadyAtMaxSteps


def check_args(training_args, model_args, stage_args) -> None:
    """Combinations of arguments that cannot work, as one clear error before anything is loaded."""
    if not (model_args.model_name_or_path or stage_args.vision_model_name_or_path):
        raise ValueError("set model_name_or_path, or vision_model_name_or_path + text_model_name_or_path")
    if stage_args.stage == "alignment" and model_args.use_peft:
        raise ValueError("stage 'alignment' trains the projector only; use_peft applies to the instruct stage")
    if training_args.push_to_hub:
        from ..hub import require_hub_access

        require_hub_access(f"push {training_args.hub_model_id or 'the model'} after training")
    if training_args.push_to_hub and model_args.use_peft:
        raise ValueError("push_to_hub with use_peft: merge the adapter first (hf-medvlm merge-lora), then push the "
                         "merged folder with hf_medvlm.hub.push_model")
    if stage_args.image_start_end_tokens and not stage_args.vision_model_name_or_path:
        raise ValueError("image_start_end_tokens adds <im_start>/<im_end> to a fresh model (vision_model_name_or_path + "
                         "text_model_name_or_path); a checkpoint already carries them, or not, in its processor")
    if training_args.assistant_only_loss is False and stage_args.stage == "instruct":
        logger.warning("assistant_only_loss is false: user, image and template tokens will be supervised too")
    if training_args.assistant_only_loss and stage_args.chat_template_name == "plain":
        logger.warning("TRL's warning that the chat template leaves the end-of-turn token out of the loss is expected "
                       "with `plain`: LLaVA's stage-1 target is the caption and '\\n', with no EOS (the stage-1 model "
                       "is never asked to stop); stage 2's template supervises '</s>'")
    if training_args.assistant_only_loss and stage_args.chat_template_name == "llava_v0":
        logger.warning("TRL's warning that the chat template leaves the end-of-turn token out of the loss is expected "
                       "with `llava_v0`: as in LLaVA-Med v1.0, an answer ends with the supervised '###', which is the "
                       "stop string at generation, not with EOS")


def fit_stage_to_family(stage_args, family: str) -> None:
    """Fit the stage arguments to the model family (`checkpoint_family`): LLaVA-Med's curriculum (stage `alignment`,
    the package's templates) is LlavaMed's; another family trains stage-2 style with its own chat template."""
    if family == "llava_med":
        if stage_args.processor_kwargs:
            raise ValueError("processor_kwargs applies to other families than LlavaMed; a LlavaMed's image "
                             "processing comes from its checkpoint (image_aspect_mode for a fresh one)")
        return
    if stage_args.stage == "alignment":
        raise ValueError(
            f"stage 'alignment' is LLaVA-Med's stage 1 (projector pre-training of a LlavaMed assembled from a vision "
            f"encoder and a causal LM); a {family!r} checkpoint comes with its projector trained: use stage 'instruct'"
        )
    if not stage_args.template_from_stage:
        raise ValueError(
            f"chat_template_name {stage_args.chat_template_name!r} is a LlavaMed template; a {family!r} checkpoint "
            "trains with the chat template its processor carries: leave chat_template_name unset"
        )
    stage_args.chat_template_name = None


def build_trainer(script_args, mixture_args, training_args, model_args, stage_args):
    """Resolve the throughput keys for this machine, load data and model, and return the `MedVLMSFTTrainer`.

    Its `resolved_config` is recorded once those keys and the family's stage arguments are resolved (it says what ran)
    and before the trainer clears `use_liger_kernel` and `push_to_hub` (the push is `finish_run`'s).
    """
    # Imported here, not at the top: TRL's trainer takes seconds to import, and `hf-medvlm train --help` needs only
    # the arguments above.
    from transformers import set_seed

    from .acceleration import resolve_training_acceleration
    from .data import load_training_data
    from .outputs import resolved_config
    from .trainer import MedVLMSFTTrainer

    for key, decision in resolve_training_acceleration(training_args, model_args).items():
        logger.info("%s resolved to %s", key, decision)
    set_seed(training_args.seed)  # a fresh model's projector init draws random numbers
    if not stage_args.vision_model_name_or_path:
        fit_stage_to_family(stage_args, checkpoint_family(model_args, training_args.trust_remote_code))
    config = resolved_config(script_args, mixture_args, training_args, model_args, stage_args)
    training_args.push_to_hub = False
    train_dataset, eval_dataset = load_training_data(script_args, mixture_args)
    model, processor = load_model_and_processor(model_args, stage_args,
                                                trust_remote_code=training_args.trust_remote_code)
    peft_config = lora_config_for(model, model_args) if model_args.use_peft else None
    freeze_modules(model, stage_args.freeze_modules)
    if stage_args.stage == "alignment" and stage_args.train_image_start_end_embeddings:
        rows = train_embedding_rows(model, processor, [processor.image_start_token, processor.image_end_token])
        if rows and training_args.weight_decay:
            raise ValueError(
                f"training the <im_start>/<im_end> embedding rows masks the gradient of every other row, but "
                f"weight_decay={training_args.weight_decay} would still shrink them; set weight_decay 0 (LLaVA-Med "
                "v1.0 used 0) or train_image_start_end_embeddings false")
    with training_args.main_process_first(desc="length pass"):  # the other ranks read rank 0's cached lengths
        train_dataset, eval_dataset, length_reports = fit_splits_to_length(
            train_dataset, eval_dataset, processor, max_length=training_args.max_length,
            policy=stage_args.length_policy, max_images_per_sample=stage_args.max_images_per_sample,
            num_proc=training_args.dataset_num_proc,
        )

    trainer = MedVLMSFTTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=processor,
        peft_config=peft_config,
        callbacks=[LengthReportCallback(length_reports)],
        group_by_modality_length=stage_args.group_by_modality_length,
        projector_lr=stage_args.projector_lr,
        train_lengths=length_reports[0].lengths,
        resolved_config=config,
    )
    logger.info("Trainable parameters by part: %s", trainable_parameter_report(trainer.model))
    return trainer


def run_sft(script_args, mixture_args, training_args, model_args, stage_args, recipe_path: str | None = None) -> None:
    """Load data and model, train, save model + processor + resolved config, write the card and optionally push.

    The arguments are those `hf-medvlm train` parses and checks with `check_args`; `recipe_path` (the YAML they came
    from) is copied into the model card.
    """
    from .data import check_sources
    from .outputs import clean_output_dir, finish_run, write_resolved_config

    check_quantization_supported(model_args)
    check_sources(script_args, mixture_args, model_args, stage_args)
    if training_args.should_save:
        clean_output_dir(training_args.output_dir, training_args.resume_from_checkpoint)
    trainer = build_trainer(script_args, mixture_args, training_args, model_args, stage_args)
    config = trainer.resolved_config
    if trainer.is_world_process_zero():
        write_resolved_config(training_args.output_dir, config)
    trainer.add_callback(_StopAtMaxSteps())
    try:
        trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    except _AlreadyAtMaxSteps:
        logger.info("%s is already at max_steps (%d): nothing left to train; writing its model as the result",
                    training_args.resume_from_checkpoint, trainer.state.max_steps)
    trainer.save_model(training_args.output_dir)
    trainer.save_state()
    if trainer.is_world_process_zero():
        trainer.processing_class.save_pretrained(training_args.output_dir)
        finish_run(
            trainer, config,
            base_models=[m for m in (model_args.model_name_or_path, stage_args.vision_model_name_or_path,
                                     stage_args.text_model_name_or_path) if m],
            datasets=[d.path for d in mixture_args.datasets] or [script_args.dataset_name],
            recipe_path=recipe_path, push_to_hub=config["push_to_hub"],
        )
