"""Batched left-padded generation and each model's own stop tokens, for every family."""

from __future__ import annotations

import pytest

from hf_medvlm.eval.generation import GenerationSettings, generate_answers, stop_token_ids
from tests.conftest import make_rgb_image
from tests.families.conftest import FAMILIES, tiny_family

QUESTIONS = ["Is there an effusion?", "Where is the lesion located in this scan?", "Compare the two images.", "Q?"]


def _images():
    # Different sizes: dynamic-resolution processors give the rows different image token counts, hence padding.
    return [[make_rgb_image(48, 40, seed=0)], [make_rgb_image(60, 30, seed=1)],
            [make_rgb_image(seed=2), make_rgb_image(20, 50, seed=3)], [make_rgb_image(seed=4)]]


@pytest.mark.parametrize("family", FAMILIES)
def test_batched_equals_one_at_a_time(family):
    model, processor = tiny_family(family)
    settings = GenerationSettings(max_new_tokens=6, batch_size=4)
    batched = generate_answers(model, processor, QUESTIONS, _images(), settings, progress=False)
    single = [generate_answers(model, processor, [q], [i], GenerationSettings(max_new_tokens=6, batch_size=1),
                               progress=False)[0] for q, i in zip(QUESTIONS, _images())]
    assert batched == single and all(batched)


class _Forced:
    """A forward hook on the LM head: the first step emits `first`, the second `stop`, every later one `after`."""

    def __init__(self, first: int, stop: int, after: int):
        self.schedule, self.after, self.calls = [first, stop], after, 0

    def __call__(self, module, inputs, logits):
        token = self.schedule[self.calls] if self.calls < len(self.schedule) else self.after
        self.calls += 1
        logits = logits.clone()
        logits[..., -1, token] += 1e4
        return logits


@pytest.mark.parametrize("family", FAMILIES)
def test_generation_stops_at_the_models_own_end_of_turn(family):
    """The family's end-of-turn token (`<|im_end|>`, `<end_of_utterance>`, `<end_of_turn>`, `</s>`) ends the answer.

    Gemma's end-of-turn is not its tokenizer's EOS: only the model's generation_config names it.
    """
    model, processor = tiny_family(family)
    tokenizer = processor.tokenizer
    end_of_turn = tokenizer.convert_tokens_to_ids(FAMILIES[family][2])
    assert end_of_turn in stop_token_ids(model, tokenizer)
    yes, no = (tokenizer.convert_tokens_to_ids(t) for t in ("▁yes", "▁no"))
    handle = model.get_output_embeddings().register_forward_hook(_Forced(yes, end_of_turn, no))
    try:
        answers = generate_answers(model, processor, QUESTIONS[:2], _images()[:2],
                                   GenerationSettings(max_new_tokens=8, batch_size=2), progress=False)
    finally:
        handle.remove()
    assert answers == ["yes", "yes"]
