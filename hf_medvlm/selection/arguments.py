"""Arguments of the selection stages (`hf-medvlm select train|score|pick`), apart from the code they configure so
that parsing them (and `--help`) imports neither the model nor the trainer. `select train` also takes
`training.SelectorTrainingArguments` (a `TrainingArguments`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..outcome import failure_rate_field

__all__ = ["TrainArguments", "ScoreArguments", "PickArguments"]


@dataclass
class TrainArguments:
    model_name_or_path: str = field(metadata={
        "help": "A CLIP-like encoder loadable with AutoModel (e.g. openai/clip-vit-base-patch16) to start a new "
                "selector, or a saved MedSelector to continue training. Its processor must load with AutoProcessor."})
    human_pairs: str | None = field(default=None, metadata={
        "help": "Clinician preference pairs (pair schema): .json/.jsonl/.parquet file, dataset folder or Hub repo."})
    human_test_pairs: str | None = field(default=None, metadata={
        "help": "Held-out clinician pairs for evaluation; default: `human_test_fraction` of `human_pairs`."})
    human_test_fraction: float = field(default=0.2, metadata={
        "help": "Fraction of human pairs held out for evaluation when `human_test_pairs` is not given."})
    model_pairs: str | None = field(default=None, metadata={"help": "Ready-made model preference pairs."})
    model_ratings: str | None = field(default=None, metadata={
        "help": "Model-rated samples (training schema + `rating` 0-10 or null) to turn into model pairs."})
    dataset_config: str | None = field(default=None, metadata={"help": "Config name for folder/Hub inputs."})
    num_model_pairs: int | None = field(default=None, metadata={
        "help": "Model pairs drawn from `model_ratings` (default: one per usable rated sample)."})
    rating_min_gap: float = field(default=1.0, metadata={"help": "Minimum rating difference within a model pair."})
    loss_type: str = field(default="paper", metadata={"help": "paper | bradley_terry | code_hinge."})
    head_hidden_sizes: str = field(default="512,512,512", metadata={"help": "Comma-separated MLP hidden sizes."})
    include_caption: bool = field(default=True, metadata={"help": "Encode the caption/mention before the QA text."})
    qa_rounds: int = field(default=1, metadata={
        "help": "QA rounds read per sample (1 = first, as the code; 0 = all)."})
    sweep_w: str | None = field(default=None, metadata={
        "help": "Comma-separated mixing weights w: trains one selector per value and prints a Table-1-style "
                "comparison."})
    on_error: str = field(default="skip", metadata={"help": "raise | skip (and count) bad pairs or rated rows."})


@dataclass
class ScoreArguments:
    model_name_or_path: str = field(metadata={"help": "A trained MedSelector folder or Hub repo."})
    dataset_name: str = field(metadata={"help": "Dataset (training schema): folder, Hub repo or .parquet/.jsonl."})
    output_dir: str = field(metadata={"help": "Where to write the scored dataset (a dataset folder)."})
    dataset_config: str | None = field(default=None, metadata={"help": "Config of the input dataset."})
    dataset_split: str = field(default="train", metadata={"help": "Split of the input dataset."})
    output_config: str = field(default="scored", metadata={"help": "Config name of the scored dataset."})
    score_column: str = field(default="selection_score", metadata={"help": "Column the scores are written to."})
    save_features: bool = field(default=False, metadata={
        "help": "Also write the selector features (column `selection_features`), needed by "
                "`pick --strategy clusters`."})
    batch_size: int = field(default=32, metadata={"help": "Samples per forward pass."})
    max_text_length: int = field(default=256, metadata={"help": "Truncate encoded texts to this many tokens."})
    device: str = field(default="cpu", metadata={"help": "torch device, e.g. cpu or cuda."})
    # Rows written by `generate` all have an image and a QA round; a tenth unscorable means the wrong dataset.
    max_failure_rate: float = failure_rate_field(0.1, "rows (no image, or no question/answer round to score)")


@dataclass
class PickArguments:
    dataset_name: str = field(metadata={"help": "Scored dataset (output of `select score`)."})
    output_dir: str = field(metadata={"help": "Dataset folder receiving one config per percentage (`top_10`, ...)."})
    dataset_config: str | None = field(default="scored", metadata={"help": "Config of the scored dataset."})
    dataset_split: str = field(default="train", metadata={"help": "Split of the scored dataset."})
    score_column: str = field(default="selection_score", metadata={"help": "Column holding the scores."})
    percents: str = field(default="10,50,80", metadata={"help": "Comma-separated top-K percentages to write."})
    strategy: str = field(default="global", metadata={
        "help": "global = top K percent over all samples (the released code); clusters = equal share of "
                "top-ranked samples from each K-means cluster (the paper text).", "choices": ["global", "clusters"]})
    num_clusters: int = field(default=10, metadata={"help": "K-means clusters for strategy=clusters."})
    features_column: str = field(default="selection_features", metadata={"help": "Features for clustering."})
    seed: int = field(default=0, metadata={"help": "K-means seed."})
    label_column: str | None = field(default=None, metadata={
        "help": "Labelled column (0/1, or a rating with `label_threshold`) for the Precision@K / F1@K plot."})
    label_threshold: float | None = field(default=None, metadata={
        "help": "A sample is good when label_column >= this (default: label_column is already 0/1)."})
    plot_path: str | None = field(default=None, metadata={"help": "PNG path of the curves (default output_dir)."})
