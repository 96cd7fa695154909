"""Fit training rows to `max_length` before training starts, counting image placeholders as the processor expands them.

TRL's collator truncates on the fly, which crashes on a cut image placeholder or silently drops an answer's end and
EOS. So every row is measured once as the collator will build it (`image_tokens.ImageExpansion`) and, before the first
step, a row that does not fit is skipped, trimmed to its leading whole rounds, or named in an error; a `LengthReport`
counts it. Why images are never dropped from a round: docs/training.md, "Rows longer than `max_length`".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import datasets
from tqdm.auto import tqdm
from transformers import TrainerCallback
from trl.data_utils import prepare_multimodal_messages

from .image_tokens import ImageExpansion, image_size
from .sampler import image_counts

__all__ = ["LENGTH_POLICIES", "LengthReport", "LengthReportCallback", "fit_to_length", "fit_splits_to_length",
           "image_token_count", "measure"]

logger = logging.getLogger(__name__)

LENGTH_POLICIES = ("skip", "trim_rounds", "error")
EXAMPLES_KEPT = 5


def image_token_count(processor) -> int:
    """Tokens one image becomes in the output of a fixed-size processor (576 for CLIP-336/14 keeping patch tokens).

    Raises for a processor whose count depends on the image size (Qwen2-VL, Idefics3 with image splitting).
    """
    return len(ImageExpansion(processor).ids())


@dataclass
class LengthReport:
    """What the length pass did to one split."""

    split: str
    policy: str
    max_length: int | None
    max_images_per_sample: int | None
    rows_in: int = 0
    rows_out: int = 0
    skipped_over_max_length: int = 0
    skipped_over_max_images: int = 0
    trimmed: int = 0
    rounds_dropped: int = 0
    images_dropped: int = 0
    longest: int = 0
    examples: list[str] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list, repr=False)

    def fits(self, length: int, num_images: int) -> bool:
        """Whether a row of `length` tokens and `num_images` images is within this pass's limits."""
        return (self.max_length is None or length <= self.max_length) and (
            self.max_images_per_sample is None or num_images <= self.max_images_per_sample
        )

    @property
    def skipped(self) -> int:
        return self.skipped_over_max_length + self.skipped_over_max_images

    def metrics(self) -> dict[str, int]:
        names = ("rows_in", "rows_out", "skipped_over_max_length", "skipped_over_max_images", "trimmed",
                 "rounds_dropped", "images_dropped", "longest")
        return {f"length_policy/{self.split}/{name}": getattr(self, name) for name in names}

    def summary(self) -> str:
        limits = f"max_length {self.max_length}, max_images_per_sample {self.max_images_per_sample}"
        text = (f"{self.split}: {self.rows_in} rows -> {self.rows_out} ({self.policy}; {limits}): "
                f"{self.skipped} skipped ({self.skipped_over_max_length} over max_length, "
                f"{self.skipped_over_max_images} over max_images_per_sample), {self.trimmed} trimmed "
                f"({self.rounds_dropped} rounds, {self.images_dropped} images dropped); longest kept row "
                f"{self.longest} tokens")
        return text + (f"; first affected rows: {self.examples}" if self.examples else "")


@dataclass(frozen=True)
class _Trim:
    messages: list[dict]
    num_images: int
    length: int
    rounds_dropped: int


def fit_to_length(
    dataset: datasets.Dataset, processor, *, max_length: int | None, policy: str = "trim_rounds",
    max_images_per_sample: int | None = None, split: str = "train", batch_size: int = 1000,
    num_proc: int | None = None,
) -> tuple[datasets.Dataset, LengthReport]:
    """Return `dataset` with every row within `max_length` tokens and `max_images_per_sample` images, and a report.

    `processor` must carry the chat template used for training. `report.lengths` holds the kept rows' lengths, in
    order (empty when there is no limit to check, and so nothing was measured).
    """
    if policy not in LENGTH_POLICIES:
        raise ValueError(f"length_policy must be one of {LENGTH_POLICIES}, got {policy!r}")
    report = LengthReport(split, policy, max_length, max_images_per_sample, len(dataset), len(dataset))
    if max_length is None and max_images_per_sample is None:
        return dataset, report
    expansion = ImageExpansion(processor)
    lengths, counts = measure(dataset, processor, split, batch_size, num_proc, expansion=expansion)
    over = [i for i, (n, k) in enumerate(zip(lengths, counts)) if not report.fits(n, k)]
    if over and policy == "error":
        raise ValueError(_error_message(dataset, over, lengths, counts, report))
    trims = _trim_rows(dataset, over, counts, expansion, report) if policy == "trim_rounds" else {}
    skipped = set(over) - set(trims)
    _count(report, dataset, over, skipped, trims, counts)
    report.lengths = [trims[i].length if i in trims else n for i, n in enumerate(lengths) if i not in skipped]
    report.rows_out, report.longest = len(report.lengths), max(report.lengths, default=0)
    (logger.warning if over else logger.info)("Length policy, %s", report.summary())
    if report.rows_out == 0:
        raise ValueError(f"{split} data: no row is left after the length pass: {report.summary()}")
    return _rebuild(dataset, skipped, trims), report


def fit_splits_to_length(train: datasets.Dataset, evaluation: datasets.Dataset | None, processor, **limits):
    """`fit_to_length` on the training split and, if any, the eval split: `(train, eval, reports)`."""
    train, report = fit_to_length(train, processor, split="train", **limits)
    if evaluation is None:
        return train, None, [report]
    evaluation, eval_report = fit_to_length(evaluation, processor, split="eval", **limits)
    return train, evaluation, [report, eval_report]


def measure(dataset: datasets.Dataset, processor, split: str = "train", batch_size: int = 1000,
            num_proc: int | None = None, expansion: ImageExpansion | None = None) -> tuple[list[int], list[int]]:
    """(token length, image count) of every row; reads `messages` (and `id`) and the Arrow list lengths of `images`.

    Where the processor's image token count depends on the image size, each image's size is read from its header.
    A `datasets` map: `num_proc` workers, and cached beside a dataset loaded from files, so other ranks (under
    `main_process_first`) and reruns read the lengths back instead of measuring again.
    """
    counts = image_counts(dataset)
    expansion = expansion or ImageExpansion(processor)
    columns = [c for c in ("messages", "id") if c in dataset.column_names]
    if not expansion.fixed:
        columns += [c for c in ("images", "image") if c in dataset.column_names][:1]
    measured = _undecoded(dataset.select_columns(columns)).map(
        _measure_batch, batched=True, batch_size=batch_size, with_indices=True, num_proc=num_proc,
        remove_columns=columns, desc=f"Measuring {split} rows",
        fn_kwargs={"expansion": expansion, "counts": counts, "split": split},
    )
    return list(measured["num_tokens"]), counts


def _measure_batch(batch: dict, indices: list[int], expansion, counts: list[int], split: str) -> dict:
    num_images = [counts[i] for i in indices]
    names = batch["id"] if "id" in batch else [f"#{i}" for i in indices]
    prepared = []
    for messages, k, name in zip(batch["messages"], num_images, names):
        try:  # one image block per image, as the collator makes them (`images` stand-ins: no decoding)
            prepared.append(prepare_multimodal_messages(messages, images=[None] * k))
        except ValueError as err:
            raise ValueError(f"{split} data, row {name!r}: {err}") from err
    try:
        return {"num_tokens": expansion.lengths(prepared, _sizes(batch) or num_images, names)}
    except ValueError as err:  # `lengths` names the row
        raise ValueError(f"{split} data, {err}") from err


def _undecoded(dataset: datasets.Dataset) -> datasets.Dataset:
    """`dataset` with its image columns read as `{"bytes", "path"}` (only their headers are opened)."""
    features = datasets.Features({name: _without_decoding(f) for name, f in dataset.features.items()})
    return dataset.cast(features) if features != dataset.features else dataset


def _sizes(batch: dict) -> list[list[tuple[int, int]]] | None:
    """(height, width) of every image of every row in `batch`, or None when the batch carries no image column."""
    if "images" in batch:
        return [[image_size(image) for image in images or []] for images in batch["images"]]
    if "image" in batch:
        return [[image_size(image)] if image else [] for image in batch["image"]]
    return None


def _round_ends(messages: list[dict]) -> list[int]:
    """Each `k` where `messages[:k]` is whole rounds: it ends with an assistant turn the next turn doesn't extend."""
    return [i + 1 for i, m in enumerate(messages)
            if m["role"] == "assistant" and (i + 1 == len(messages) or messages[i + 1]["role"] != "assistant")]


def _trim_rows(dataset, over: list[int], counts: list[int], expansion, report: LengthReport) -> dict[int, _Trim]:
    # A single `image` column cannot lose its image: only prefixes that keep it count.
    keep_all = "images" not in dataset.column_names
    columns = ["messages"] + ([] if expansion.fixed else [c for c in ("images", "image") if c in dataset.column_names])
    rows = _undecoded(dataset.select_columns(columns))
    trims = {i: _trim(rows[i], counts[i], expansion, report, keep_all)
             for i in tqdm(over, desc="Trimming rounds", unit="row", disable=len(over) < 100)}
    return {i: trim for i, trim in trims.items() if trim is not None}


def _trim(row: dict, count: int, expansion, report: LengthReport, keep_all: bool) -> _Trim | None:
    """The longest prefix of whole rounds of `row` (`messages`, and the undecoded images where the processor's count
    depends on their sizes) that fits, with exactly the images its turns show; None if none does."""
    sizes = (_sizes({k: [v] for k, v in row.items()}) or [[None] * count])[0]  # None: no size is needed
    prepared = prepare_multimodal_messages(row["messages"], images=[None] * len(sizes))
    ends = _round_ends(prepared)
    total_rounds = len(ends)
    if ends and ends[-1] == len(prepared):
        ends = ends[:-1]  # the whole conversation is what did not fit
    for rounds in range(len(ends), 0, -1):
        end = ends[rounds - 1]
        kept = sum(block["type"] == "image" for m in prepared[:end] for block in m["content"])
        if keep_all and kept != len(sizes):
            return None
        length = expansion.lengths([prepared[:end]], [sizes[:kept]])[0]
        if report.fits(length, kept):
            return _Trim(row["messages"][:end], kept, length, total_rounds - rounds)
    return None


def _count(report: LengthReport, dataset, over: list[int], skipped: set[int], trims: dict[int, _Trim], counts) -> None:
    limit = report.max_images_per_sample
    report.skipped_over_max_images = sum(limit is not None and counts[i] > limit for i in skipped)
    report.skipped_over_max_length = len(skipped) - report.skipped_over_max_images
    report.trimmed = len(trims)
    report.rounds_dropped = sum(trim.rounds_dropped for trim in trims.values())
    report.images_dropped = sum(counts[i] - trim.num_images for i, trim in trims.items())
    report.examples = [_row_name(dataset, i) for i in over[:EXAMPLES_KEPT]]


def _row_name(dataset, index: int) -> str:
    """The row's `id`, or `#<index>` where the data has no `id` column (a `datasets:` mixture keeps none)."""
    if "id" in dataset.column_names:
        return str(dataset.select_columns(["id"])[index]["id"])
    return f"#{index}"


def _error_message(dataset, over, lengths, counts, report: LengthReport) -> str:
    first = ", ".join(
        f"{_row_name(dataset, i)!r} ({lengths[i]} tokens, {counts[i]} images)" for i in over[:EXAMPLES_KEPT]
    )
    return (f"{report.split} data: {len(over)} of {len(dataset)} rows exceed max_length {report.max_length} or "
            f"max_images_per_sample {report.max_images_per_sample} (image placeholders counted): {first}. Set "
            "length_policy to 'skip' or 'trim_rounds', or raise the limits")


def _rebuild(dataset: datasets.Dataset, skipped: set[int], trims: dict[int, _Trim]) -> datasets.Dataset:
    """`dataset` without the skipped rows and with the trimmed ones replaced, in the original order.

    The trimmed rows are appended (images copied, never decoded) and picked in place of their originals.
    """
    if not skipped and not trims:
        return dataset
    indices, num_rows = sorted(trims), len(dataset)
    if trims:
        subset = dataset.select(indices)
        raw = _undecoded(subset)

        def trim(row, j):
            t = trims[indices[j]]
            return {"messages": t.messages, **({"images": row["images"][: t.num_images]} if "images" in row else {})}

        trimmed = raw.map(trim, with_indices=True, features=raw.features, desc="Trimming rounds")
        dataset = datasets.concatenate_datasets([dataset, trimmed.cast(subset.features)])
    position = {i: num_rows + j for j, i in enumerate(indices)}
    return dataset.select([position.get(i, i) for i in range(num_rows) if i not in skipped])


def _without_decoding(feature):
    if isinstance(feature, datasets.Image):
        return datasets.Image(decode=False)
    if isinstance(feature, datasets.List):
        return datasets.List(_without_decoding(feature.feature), length=feature.length)
    return feature


class LengthReportCallback(TrainerCallback):
    """Adds the length reports' numbers to the trainer state's log history (`trainer_state.json`), once per run."""

    def __init__(self, reports: list[LengthReport]):
        self.entry = {k: v for report in reports for k, v in report.metrics().items()}

    def on_train_begin(self, args, state, control, **kwargs):
        # A resumed run reloads the log history, which already holds the entry when the data did not change.
        if self.entry and not any(self.entry.items() <= logged.items() for logged in state.log_history):
            state.log_history.append({**self.entry, "step": state.global_step})
