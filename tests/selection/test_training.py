import pytest
import torch

from hf_medvlm.selection.data import validate_pairs
from hf_medvlm.models.med_selector.modeling_med_selector import pairwise_loss
from hf_medvlm.selection.training import (
    MixedSourceSampler, PairCollator, SelectorTrainer, SelectorTrainingArguments, compute_pair_metrics,
    freeze_encoder, train_selector,
)
from hf_medvlm.testing.tiny_selector import build_tiny_selector

from .conftest import make_pairs


@pytest.fixture(scope="module")
def held_out_human_pairs():
    return validate_pairs(make_pairs(48, "human", seed=99))[0]


def _args(tmp_path, **overrides):
    defaults = dict(output_dir=str(tmp_path), per_device_train_batch_size=16, per_device_eval_batch_size=48,
                    learning_rate=1e-3, max_steps=25, save_strategy="no", logging_steps=100, disable_tqdm=True,
                    use_cpu=True, seed=0, human_pairs_per_batch=1, dataloader_num_workers=0)
    defaults.update(overrides)
    return SelectorTrainingArguments(**defaults)


def _evaluate(model, processor, pairs, tmp_path):
    trainer = SelectorTrainer(model=model, args=_args(tmp_path), eval_dataset=pairs,
                              data_collator=PairCollator(processor), compute_metrics=compute_pair_metrics)
    return {k.removeprefix("eval_"): v for k, v in trainer.evaluate().items()}


@pytest.mark.parametrize("loss_type", ["paper", "bradley_terry", "code_hinge"])
def test_losses_prefer_the_preferred(loss_type):
    good = torch.tensor([[2.0, -2.0], [-2.0, 2.0]])
    labels = torch.tensor([0, 1])
    assert pairwise_loss(good, labels, loss_type) < pairwise_loss(good, 1 - labels, loss_type)
    weights = torch.tensor([3.0, 3.0])
    assert torch.isclose(pairwise_loss(good, labels, loss_type, weights), 3 * pairwise_loss(good, labels, loss_type))


def test_mixed_sampler_puts_human_pairs_in_every_batch():
    sources = ["human"] * 3 + ["model"] * 20
    sampler = MixedSourceSampler(sources, batch_size=5, human_per_batch=2, seed=0)
    order = list(sampler)
    assert len(order) == len(sampler) == 20 + 7 * 2  # ceil(20 / 3) = 7 batches with 2 human pairs each
    batches = [order[i:i + 5] for i in range(0, len(order), 5)]
    assert all(sum(sources[i] == "human" for i in b) == 2 for b in batches)
    assert sorted(i for i in order if sources[i] == "model") == list(range(3, 23))  # each model pair once


def test_freeze_encoder_freezes_only_the_requested_tower():
    model, _ = build_tiny_selector()
    assert freeze_encoder(model, vision=True) == ["vision_model", "visual_projection"]
    assert not any(p.requires_grad for p in model.encoder.vision_model.parameters())
    assert all(p.requires_grad for p in model.encoder.text_model.parameters())
    assert all(p.requires_grad for p in model.head.parameters())


def test_training_learns_the_planted_preference(tmp_path, held_out_human_pairs):
    model, processor = build_tiny_selector(seed=0)
    untrained = _evaluate(model, processor, held_out_human_pairs, tmp_path)
    assert 0.35 <= untrained["auc"] <= 0.65, untrained

    train, _ = validate_pairs(make_pairs(16, "human", seed=1) + make_pairs(64, "model", seed=2))
    trainer = train_selector(model, processor, train, held_out_human_pairs, _args(tmp_path, human_weight=10))
    trained = {k.removeprefix("eval_"): v for k, v in trainer.evaluate().items()}
    assert trained["auc"] >= 0.8, trained
    assert trained["accuracy"] > untrained["accuracy"] and trained["mean_rank"] < untrained["mean_rank"]


def test_larger_w_helps_when_only_human_pairs_are_informative(tmp_path):
    # 8 informative clinician pairs against 120 model pairs whose labels are coin flips; one clinician pair per batch
    # of 16, so with w = 1 the noise dominates the gradient and with w = 50 the clinician signal does.
    held_out = validate_pairs(make_pairs(48, "human", seed=99, mark_image=True))[0]
    train, _ = validate_pairs(make_pairs(8, "human", seed=3, mark_image=True)
                              + make_pairs(120, "model", seed=4, informative=False, mark_image=True))
    results = {}
    for w in (1.0, 50.0):
        model, processor = build_tiny_selector(seed=0)
        trainer = train_selector(model, processor, train, held_out,
                                 _args(tmp_path / f"w{w}", human_weight=w, max_steps=12, human_pairs_per_batch=1))
        results[w] = trainer.evaluate()["eval_auc"]
    assert results[50.0] >= 0.8 and results[50.0] > results[1.0] + 0.1, results
