"""`SFTTrainer` with LLaVA-style length grouping by modality and a separate projector learning rate."""

from __future__ import annotations

import logging
from pathlib import Path

from peft import PeftModel
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from trl import SFTTrainer

from ..files import temporary_path
from .acceleration import apply_liger_kernels
from .length_policy import measure
from .model_parts import resolve_parts
from .outputs import INCOMPLETE, write_resolved_config
from .sampler import ModalityLengthGroupedSampler, image_counts

__all__ = ["MedVLMSFTTrainer"]

logger = logging.getLogger(__name__)


class MedVLMSFTTrainer(SFTTrainer):
    """`SFTTrainer` plus two LLaVA-1.5 training options TRL lacks, and Liger kernels that reach a LlavaMed.

    Args:
        group_by_modality_length: sample with `ModalityLengthGroupedSampler` instead of uniformly at random.
        projector_lr: learning rate of the multimodal projector (own optimizer groups); `None` = `learning_rate`.
        train_lengths: exact token length of every training row (`fit_to_length`'s report); measured here if absent.
        resolved_config: the run's `resolved_config` mapping, written into every checkpoint (how it was made).

    With `args.use_liger_kernel`, the kernels are applied here to the language model (`apply_liger_kernels`), and the
    flag is cleared so that `Trainer` does not look them up again by `llava_med` (which Liger does not know);
    `self.liger_kernels_applied` records it.
    """

    def __init__(self, model=None, args=None, *rest, group_by_modality_length: bool = False,
                 projector_lr: float | None = None, train_lengths: list[int] | None = None,
                 resolved_config: dict | None = None, **kwargs):
        self.group_by_modality_length = group_by_modality_length
        self.resolved_config = resolved_config
        self.projector_lr = projector_lr
        self.train_lengths = train_lengths or None
        self.liger_kernels_applied = bool(args is not None and args.use_liger_kernel)
        if self.liger_kernels_applied:
            apply_liger_kernels(model, args.liger_kernel_config)
            args.use_liger_kernel = False
        super().__init__(model, args, *rest, **kwargs)

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if not self.group_by_modality_length or not hasattr(dataset, "__len__"):
            return super()._get_train_sampler(train_dataset)
        lengths = self.train_lengths
        if lengths is None or len(lengths) != len(dataset):
            lengths, _ = measure(dataset, self.processing_class, "train", num_proc=self.args.dataset_num_proc)
        has_image = [k > 0 for k in image_counts(dataset)]
        args = self.args
        step_size = args.per_device_train_batch_size * args.world_size * args.gradient_accumulation_steps
        sampler = ModalityLengthGroupedSampler(lengths, has_image, step_size, seed=args.data_seed or args.seed)
        if len(sampler) > len(dataset):
            logger.info(
                "Length grouping repeats %d sample(s) per epoch so that no optimizer step mixes image and text-only "
                "samples.", len(sampler) - len(dataset)
            )
        return sampler

    def create_model_card(self, *args, **kwargs):
        # TRL writes its draft card ("fine-tuned version of [None]") into output_dir at every checkpoint; the folder's
        # only README is the package's own card, written by `finish_run` when the run is done (a finished run's mark).
        return None

    def _save_checkpoint(self, model, trial):
        # A marker written first and removed last: a checkpoint that still holds it was cut off by a kill, and the next
        # run deletes it (`clean_output_dir`) before `resume_from_checkpoint` could pick it as the latest.
        marker = None
        if self.args.should_save:
            folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            folder.mkdir(parents=True, exist_ok=True)
            marker = temporary_path(folder / PREFIX_CHECKPOINT_DIR, kind=INCOMPLETE)
            marker.touch()
        super()._save_checkpoint(model, trial)
        if marker is not None:
            if self.resolved_config:
                write_resolved_config(marker.parent, self.resolved_config)
            marker.unlink(missing_ok=True)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        # Trainer reloads a full checkpoint with `load_state_dict(strict=False)` on the raw file, whose keys are in the
        # on-disk Llava layout (`language_model.model.*`): every LM tensor would be silently skipped. Load through
        # `from_pretrained`, which applies the layout conversion, and insist that every tensor matches.
        target = self.model if model is None else model
        if isinstance(target, PeftModel) or self.is_fsdp_enabled or self.is_deepspeed_enabled:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        reloaded = type(target).from_pretrained(resume_from_checkpoint, dtype=target.dtype)
        target.load_state_dict(reloaded.state_dict(), strict=True)
        logger.info("Model weights restored from %s", resume_from_checkpoint)

    def create_optimizer(self, model=None):
        if self.projector_lr is None or self.optimizer is not None:
            return super().create_optimizer(model)
        model = self.model if model is None else model
        # Four groups, as LLaVA-1.5's `mm_projector_lr`: (decay, no decay) x (projector, everything else).
        decay = set(self.get_decay_parameter_names(model))
        parts = resolve_parts(model)
        groups: dict[tuple[bool, bool], list] = {}
        for name, param in model.named_parameters():
            if param.requires_grad:
                is_projector = parts.part_of(name) == "multi_modal_projector"
                groups.setdefault((is_projector, name in decay), []).append(param)
        param_groups = [
            {
                "params": params,
                "weight_decay": self.args.weight_decay if is_decay else 0.0,
                **({"lr": self.projector_lr} if is_projector else {}),
            }
            for (is_projector, is_decay), params in sorted(groups.items())
        ]
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
        self.optimizer = optimizer_cls(param_groups, **optimizer_kwargs)
        return self.optimizer
