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
                    use_cpu=True, seed=0, model_pairs_per_human_pair=15, dataloader_num_workers=0)
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


def test_mixed_sampler_holds_the_set_ratio():
    sources = ["human"] * 3 + ["model"] * 20
    sampler = MixedSourceSampler(sources, ratio=5, seed=0)
    order = list(sampler)
    assert len(order) == len(sampler) == 20 + 4  # 20 model pairs / 5 = 4 human draws, the 3 human pairs cycled
    assert sorted(i for i in order if sources[i] == "model") == list(range(3, 23))  # each model pair once
    assert {i for i in order if sources[i] == "human"} == {0, 1, 2}
    humans_at = [p for p, i in enumerate(order) if sources[i] == "human"]
    for k, position in enumerate(humans_at):  # stratified: the k-th human pair sits in the k-th stretch of 5
        assert 5 * k <= position - k <= 5 * (k + 1), humans_at
    assert list(MixedSourceSampler(sources, ratio=5, seed=0)) == order  # deterministic per seed and epoch
    assert list(sampler) != order  # the next epoch reshuffles


def test_mixed_sampler_at_the_papers_1_to_400():
    """50 clinician pairs against 30,000 model pairs (the released code's counts) at the paper's 1:400 mix: 75 human
    draws per epoch, i.e. each clinician pair seen 1.5 times, never 1 per 64-pair batch (~1:63)."""
    sampler = MixedSourceSampler(["human"] * 50 + ["model"] * 30000, ratio=400, seed=0)
    assert sampler.mix() == {"model_pairs": 30000, "human_pairs": 50, "human_draws": 75,
                             "model_pairs_per_human_draw": 400.0}
    assert MixedSourceSampler(["human"] * 2 + ["model"] * 30, ratio=400).human_draws == 1  # never zero
    with pytest.raises(ValueError, match="must be > 0"):
        MixedSourceSampler(["human", "model"], ratio=0)


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


def test_w_sweep_at_a_fixed_mix_prefers_the_balancing_w_over_w_1(tmp_path):
    """Table 1's ordering between w = 1 and the w that balances the mix (w = 400 at 1:400), scaled down to 1:15.

    8 informative clinician pairs against 120 model pairs whose labels are coin flips, mixed 1:15. At w = 1 the clinician
    signal is 1/16 of the loss and the noise dominates; at w = 15 both sources weigh the same and the clinician
    preference is learnt. Averaged over three seeds (one tiny run is noisy). Not reproduced here: Table 1's decline
    beyond w = 400 (with coin-flip model pairs a larger w cannot hurt).
    """
    import numpy as np

    held_out = validate_pairs(make_pairs(48, "human", seed=99, mark_image=True))[0]
    train, _ = validate_pairs(make_pairs(8, "human", seed=3, mark_image=True)
                              + make_pairs(120, "model", seed=4, informative=False, mark_image=True))
    auc = {}
    for w in (1.0, 15.0):
        runs = []
        for seed in (0, 1, 2):
            model, processor = build_tiny_selector(seed=seed)
            args = _args(tmp_path / f"w{w}-{seed}", human_weight=w, max_steps=12, seed=seed)
            runs.append(train_selector(model, processor, train, held_out, args).evaluate()["eval_auc"])
        auc[w] = float(np.mean(runs))
    assert auc[15.0] >= 0.9 and auc[15.0] > auc[1.0] + 0.05, auc
