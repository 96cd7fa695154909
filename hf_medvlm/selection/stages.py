"""The BioMed-VITAL selection stages behind `hf-medvlm select train|score|pick` (seed 002 §3.2, §4.2): `run_train`,
`run_score` and `run_pick`, configured by the dataclasses of `arguments.py`."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import datasets
import numpy as np
from transformers import AutoConfig, AutoProcessor

from ..data.loading import load_rows
from ..models.med_selector import MedSelectorConfig, MedSelectorModel
from ..outcome import check_failure_rate, failure_exit_code
from .data import PAIR_FEATURES, load_pairs, pairs_from_ratings, validate_pairs
from .metrics import format_metrics_table, precision_f1_at_k
from .selection import pick_indices, plot_precision_f1, score_dataset, write_subsets
from .training import MixedSourceSampler, train_selector

__all__ = ["run_train", "run_score", "run_pick", "load_selector"]

logger = logging.getLogger(__name__)


def _csv(values: str, kind=float) -> list:
    try:
        return [kind(v) for v in str(values).split(",") if v.strip()]
    except ValueError as err:
        raise ValueError(f"expected comma-separated numbers, got {values!r}.") from err


def load_selector(name_or_path: str, train_args=None):
    """A saved MedSelector, or a new one around a CLIP-like encoder; plus its processor."""
    processor = AutoProcessor.from_pretrained(name_or_path)
    if AutoConfig.from_pretrained(name_or_path).model_type == MedSelectorConfig.model_type:
        return MedSelectorModel.from_pretrained(name_or_path), processor
    model = MedSelectorModel.from_encoder(
        name_or_path, loss_type=train_args.loss_type, head_hidden_sizes=_csv(train_args.head_hidden_sizes, int),
        include_caption=train_args.include_caption, qa_rounds=train_args.qa_rounds)
    return model, processor


def _training_pairs(args, training_args):
    """(train pairs, held-out human pairs, skip counts by input) with every bad record counted."""
    skipped, parts, test = {}, [], None

    def validated(pairs, name: str) -> datasets.Dataset:
        pairs, report = validate_pairs(pairs, on_error=args.on_error, name=name)
        skipped[name] = report.to_dict()
        return pairs

    if args.model_ratings:
        rows = load_rows(args.model_ratings, args.dataset_config)
        model_pairs, report = pairs_from_ratings(rows, num_pairs=args.num_model_pairs, min_gap=args.rating_min_gap,
                                                 qa_rounds=args.qa_rounds, seed=training_args.seed,
                                                 on_error=args.on_error)
        skipped["model_ratings"] = report.to_dict()
        parts.append(datasets.Dataset.from_list(model_pairs, features=PAIR_FEATURES))
    if args.model_pairs:
        parts.append(load_pairs(args.model_pairs, name=args.dataset_config))
    if args.human_pairs:
        human = validated(load_pairs(args.human_pairs, name=args.dataset_config), "human_pairs")
        if args.human_test_pairs is None and len(human) > 1:
            split = human.train_test_split(test_size=args.human_test_fraction, seed=training_args.seed)
            human, test = split["train"], split["test"]
        parts.append(human)
    if args.human_test_pairs:
        test = validated(load_pairs(args.human_test_pairs, name=args.dataset_config), "human_test_pairs")
    if not parts:
        raise ValueError("select train: give human_pairs, model_pairs and/or model_ratings.")
    train = validated(datasets.concatenate_datasets([part.cast(PAIR_FEATURES) for part in parts]), "train_pairs")
    return train, test, skipped


def _train_one(args, training_args, train, test) -> dict:
    # Trainer would push on its own (and contact the Hub when it starts); we push once, at the end, with push_model.
    push, training_args.push_to_hub = training_args.push_to_hub, False
    model, processor = load_selector(args.model_name_or_path, args)
    trainer = train_selector(model, processor, train, test, training_args)
    trainer.save_model(training_args.output_dir)  # model + processor (processing_class)
    metrics = trainer.evaluate() if test is not None else {}
    metrics = {k.removeprefix("eval_"): v for k, v in metrics.items()}
    metrics["text_truncation"] = trainer.text_truncation  # train candidates cut to max_text_length, by kind
    Path(training_args.output_dir, "selection_metrics.json").write_text(json.dumps(metrics, indent=2))
    if push:
        from ..hub import push_model

        summary = ("BioMed-VITAL data-selection model (hf_medvlm `select train`): scores how much clinicians would "
                   f"prefer an instruction sample. Held-out clinician-pair metrics: {metrics}.")
        base = args.model_name_or_path  # only a Hub repo id belongs in the card's `base_model`, not a local folder
        push_model(training_args.output_dir, training_args.hub_model_id or Path(training_args.output_dir).name,
                   token=training_args.hub_token, commit_message="Train BioMed-VITAL selection model",
                   card_kwargs={"summary": summary, "base_models": [] if Path(base).exists() else [base]})
    return metrics


def run_train(args, training_args) -> int:
    if training_args.push_to_hub:
        from ..hub import require_hub_access

        require_hub_access("push the selection model")  # in offline mode, before training
    train, test, skipped = _training_pairs(args, training_args)
    sources = {str(k): int(v) for k, v in zip(*np.unique(train["source"], return_counts=True))}  # no np.str_ in logs
    logger.info("training pairs by source: %s; held-out human pairs: %s; skipped: %s",
                sources, 0 if test is None else len(test), skipped)
    weights = _csv(args.sweep_w) if args.sweep_w else [training_args.human_weight]
    mix = _mix(train, training_args.model_pairs_per_human_pair)
    rows = []
    for w in weights:
        run_args = copy.deepcopy(training_args)
        run_args.human_weight = w
        if args.sweep_w:
            run_args.output_dir = str(Path(training_args.output_dir) / f"w_{w:g}")
        rows.append({"w": w, **_train_one(args, run_args, train, test),
                     "human_to_model_loss": _loss_balance(mix, w)})
    summary = {"runs": rows, "skipped": skipped, "train_pairs_by_source": sources, "mix": mix}
    Path(training_args.output_dir).mkdir(parents=True, exist_ok=True)
    Path(training_args.output_dir, "sweep_results.json").write_text(json.dumps(summary, indent=2, default=float))
    if test is not None:
        print(format_metrics_table(rows))
    return 0


def _mix(train: datasets.Dataset, ratio: float) -> dict:
    """What one epoch of the training stream holds (human draws per epoch at the 1:`ratio` mix)."""
    if ratio <= 0:
        return {"model_pairs_per_human_pair": 0, "note": "plain shuffle at the pairs' own proportion"}
    return {"model_pairs_per_human_pair": ratio, **MixedSourceSampler(train["source"], ratio).mix()}


def _loss_balance(mix: dict, w: float) -> float | None:
    """Human pairs' total loss weight per epoch over the model pairs' (w x human draws / model pairs); 1 = balanced,
    the paper's w = 400 at 1:400."""
    draws, models = mix.get("human_draws"), mix.get("model_pairs")
    return w * draws / models if draws and models else None


def run_score(args) -> int:
    check_failure_rate(args.max_failure_rate)
    model, processor = load_selector(args.model_name_or_path)
    model.to(args.device)
    dataset = load_rows(args.dataset_name, args.dataset_config, args.dataset_split)
    scores, features, report = score_dataset(model, processor, dataset, batch_size=args.batch_size,
                                             max_length=args.max_text_length, with_features=args.save_features)
    scored = dataset.add_column(args.score_column, [None if np.isnan(s) else float(s) for s in scores])
    if args.save_features:
        width = 0 if features is None else features.shape[1]
        vectors = [None if features is None or np.isnan(f).any() else f.tolist() for f in
                   (features if features is not None else [None] * len(dataset))]
        scored = scored.add_column("selection_features", vectors,
                                   feature=datasets.List(datasets.Value("float32"), length=width or -1))
    write_subsets(scored, {args.output_config: np.arange(len(scored))}, args.output_dir)
    print(f"scored {len(dataset) - report.total} of {len(dataset)} rows -> {args.output_dir} "
          f"(config {args.output_config!r}); {report.summary()}; texts cut to {args.max_text_length} tokens: "
          f"{dict(report.truncated) or 'none'}")
    return failure_exit_code("select score", report.total, len(dataset), args.max_failure_rate, "rows",
                             details="unscored rows keep a null score")


def _good_labels(dataset, args) -> np.ndarray:
    if args.label_column not in dataset.column_names:
        raise ValueError(f"{args.dataset_name}: no column {args.label_column!r} to label good samples.")
    values = np.array([np.nan if v is None else float(v) for v in dataset[args.label_column]])
    return values >= args.label_threshold if args.label_threshold is not None else values == 1


def run_pick(args) -> int:
    dataset = load_rows(args.dataset_name, args.dataset_config, args.dataset_split)
    if args.score_column not in dataset.column_names:
        raise ValueError(f"{args.dataset_name}: no score column {args.score_column!r}; run `select score` first.")
    scores = np.array([np.nan if s is None else s for s in dataset[args.score_column]], dtype=np.float64)
    features = None
    if args.strategy == "clusters":
        if args.features_column not in dataset.column_names:
            raise ValueError(f"{args.dataset_name}: no {args.features_column!r} column for strategy=clusters; "
                             "run `select score --save_features true`.")
        width = len(next(f for f in dataset[args.features_column] if f is not None))
        features = np.array([f if f is not None else [np.nan] * width for f in dataset[args.features_column]])
    unscored = int(np.isnan(scores).sum())
    selections = {f"top_{p:g}": pick_indices(scores, p, strategy=args.strategy, features=features,
                                             num_clusters=args.num_clusters, seed=args.seed)
                  for p in _csv(args.percents)}
    counts = write_subsets(dataset, selections, args.output_dir)
    report = {"strategy": args.strategy, "counts": counts, "unscored_rows_excluded": unscored}
    if args.label_column:
        percents = list(range(1, 101))
        curves = precision_f1_at_k(np.nan_to_num(scores, nan=-np.inf), _good_labels(dataset, args), percents)
        plot = plot_precision_f1(curves, args.plot_path or Path(args.output_dir) / "precision_f1_at_k.png",
                                 marks=_csv(args.percents))
        report.update(curves=curves, plot=str(plot))
    Path(args.output_dir, "selection_report.json").write_text(json.dumps(report, indent=2))
    print(f"picked ({args.strategy}) {counts} -> {args.output_dir}; {unscored} unscored rows excluded"
          + (f"; plot {report['plot']}" if "plot" in report else ""))
    return 0
