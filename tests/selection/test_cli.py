"""`select train|score|pick` at tiny scale: pairs and rated rows on disk -> selector -> scores -> subsets + plot."""

import json
import random

import datasets
import numpy as np
import pytest

from hf_medvlm.commands.select import main, parse_args
from hf_medvlm.selection.arguments import PickArguments, ScoreArguments, TrainArguments
from hf_medvlm.selection.data import PAIR_FEATURES
from hf_medvlm.selection.selection import _cluster_quotas, pick_indices
from hf_medvlm.testing.tiny_selector import build_tiny_selector

from .conftest import make_pairs, rated_row


def test_parse_args_takes_the_command_from_the_recipe(tmp_path, capsys):
    recipe = tmp_path / "pick.yaml"
    recipe.write_text("command: pick\ndataset_name: data\noutput_dir: out\nstrategy: clusters\n")
    (args,) = parse_args(["--config", str(recipe), "--num_clusters", "3"])
    assert isinstance(args, PickArguments) and args.strategy == "clusters" and args.num_clusters == 3
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["score", "--config", str(recipe)])
    assert exit_info.value.code == 2
    assert "the recipe is for `hf-medvlm select pick`, not `hf-medvlm select score`" in capsys.readouterr().err
    recipe.write_text("command: pick\ndataset_name: d\noutput_dir: o\nstratgy: global\n")
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--config", str(recipe)])
    assert exit_info.value.code == 2
    assert f"{recipe}: unknown key 'stratgy' (did you mean 'strategy'?)" in capsys.readouterr().err


def test_pick_global_and_cluster_balanced():
    scores = np.array([9, 8, 7, 6, 5, 4, 3, 2, 1, np.nan])
    assert pick_indices(scores, 30).tolist() == [0, 1, 2]
    clusters = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
    picked = pick_indices(scores, 40, strategy="clusters", cluster_labels=clusters)
    assert sorted(picked.tolist()) == [0, 1, 6, 7]  # two from each cluster, best first in each
    assert _cluster_quotas(np.array([1, 10, 10]), 9).tolist() == [1, 4, 4]


def _write_inputs(tmp_path):
    encoder_dir = tmp_path / "encoder"
    model, processor = build_tiny_selector(seed=0)
    model.encoder.save_pretrained(encoder_dir)
    processor.save_pretrained(encoder_dir)
    human = datasets.Dataset.from_list(make_pairs(12, "human", seed=1), features=PAIR_FEATURES)
    bad = {**make_pairs(1, "human", seed=5)[0], "id": "bad", "label": 1}
    bad["image_b"], bad["answer_b"], bad["question_b"], bad["caption_b"] = (bad["image_a"], bad["answer_a"],
                                                                           bad["question_a"], bad["caption_a"])
    human = datasets.concatenate_datasets([human, datasets.Dataset.from_list([bad], features=PAIR_FEATURES)])
    human.to_parquet(str(tmp_path / "human.parquet"))
    datasets.Dataset.from_list(make_pairs(24, "human", seed=2), features=PAIR_FEATURES).to_parquet(
        str(tmp_path / "human_test.parquet"))
    rng = random.Random(3)
    rows = [rated_row(rng, rng.choice([1, 2, 3, 7, 8, 9])) for _ in range(40)] + [rated_row(rng, None)]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "rated.parquet"))
    return encoder_dir


@pytest.mark.integration
def test_train_score_pick_round_trip(tmp_path, capsys):
    encoder_dir = _write_inputs(tmp_path)
    run_dir = tmp_path / "selector"
    assert main(["train", "--model_name_or_path", str(encoder_dir), "--human_pairs", str(tmp_path / "human.parquet"),
                 "--human_test_pairs", str(tmp_path / "human_test.parquet"),
                 "--model_ratings", str(tmp_path / "rated.parquet"), "--head_hidden_sizes", "32",
                 "--output_dir", str(run_dir), "--max_steps", "15", "--learning_rate", "1e-3",
                 "--per_device_train_batch_size", "8", "--save_strategy", "no", "--use_cpu", "true",
                 "--freeze_vision_encoder", "true", "--human_weight", "5", "--model_pairs_per_human_pair", "4",
                 "--disable_tqdm", "true"]) == 0
    table = capsys.readouterr().out
    assert "| w | ACC ↑ | AUC ↑ | MR ↓ | MAP ↑ |" in table and "| 5 |" in table
    summary = json.loads((run_dir / "sweep_results.json").read_text())
    assert summary["skipped"]["human_pairs"] == {"identical_candidates": 1}
    assert summary["skipped"]["model_ratings"] == {"null_rating": 1}
    assert summary["train_pairs_by_source"]["human"] == 12
    model_pairs = summary["train_pairs_by_source"]["model"]
    assert summary["mix"]["human_draws"] == round(model_pairs / 4)  # one clinician pair per 4 model pairs
    assert summary["runs"][0]["human_to_model_loss"] == 5 * round(model_pairs / 4) / model_pairs

    scored_dir = tmp_path / "scored"
    assert main(["score", "--model_name_or_path", str(run_dir), "--dataset_name", str(tmp_path / "rated.parquet"),
                 "--output_dir", str(scored_dir), "--save_features", "true", "--batch_size", "16"]) == 0
    scored = datasets.load_dataset(str(scored_dir), name="scored", split="train")
    assert len(scored) == 41 and all(s is not None for s in scored["selection_score"])
    assert len(scored[0]["selection_features"]) == 32

    picked_dir = tmp_path / "picked"
    for strategy in ("global", "clusters"):
        assert main(["pick", "--dataset_name", str(scored_dir), "--output_dir", str(picked_dir / strategy),
                     "--strategy", strategy, "--num_clusters", "3", "--percents", "10,50,80",
                     "--label_column", "rating", "--label_threshold", "5"]) == 0
        top_50 = datasets.load_dataset(str(picked_dir / strategy), name="top_50", split="train")
        assert len(top_50) == round(41 * 0.5)
        assert len(datasets.load_dataset(str(picked_dir / strategy), name="top_10", split="train")) == 4
        assert (picked_dir / strategy / "precision_f1_at_k.png").stat().st_size > 5000
    global_top = datasets.load_dataset(str(picked_dir / "global"), name="top_50", split="train")
    assert min(global_top["selection_score"]) >= np.median(scored["selection_score"])
    report = json.loads((picked_dir / "global" / "selection_report.json").read_text())
    assert len(report["curves"]["precision"]) == 100


def test_help_has_an_example(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["pick", "--help"])
    assert exit_info.value.code == 0
    assert "hf-medvlm select pick --dataset_name" in capsys.readouterr().out


def test_missing_score_column_is_a_clear_error(tmp_path):
    rng = random.Random(0)
    datasets.Dataset.from_list([rated_row(rng, 3)]).to_parquet(str(tmp_path / "x.parquet"))
    with pytest.raises(ValueError, match="no score column 'selection_score'"):
        main(["pick", "--dataset_name", str(tmp_path / "x.parquet"), "--output_dir", str(tmp_path / "o")])


@pytest.mark.parametrize("name", ["train", "train_frozen_cpu", "score", "pick_global", "pick_clusters"])
def test_recipes_parse_and_open_with_command(repo_root, name):
    path = repo_root / "recipes" / "biomed-vital" / "selection" / f"{name}.yaml"
    header = path.read_text().splitlines()
    assert header[0].startswith("#") and any("hf-medvlm select" in line for line in header[:8])
    parsed = parse_args(["--config", str(path)])
    expected = {"train": TrainArguments, "score": ScoreArguments}.get(name.split("_")[0], PickArguments)
    assert isinstance(parsed[0], expected)
