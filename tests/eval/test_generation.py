"""Batched greedy generation gives the same answers as one question at a time, in input order, with several images."""

from hf_medvlm.eval.generation import GenerationSettings, build_messages, generate_answers
from tests.conftest import make_rgb_image


def test_batched_equals_one_at_a_time_and_keeps_order(tiny_llava_med):
    model, processor = tiny_llava_med
    questions = ["Is there an effusion?", "Where is the lesion located in this scan?", "Compare the two images.", "Q?"]
    images = [[make_rgb_image(seed=0)], [make_rgb_image(seed=1)], [make_rgb_image(seed=2), make_rgb_image(seed=3)],
              [make_rgb_image(seed=4)]]
    batched = generate_answers(model, processor, questions, images, GenerationSettings(max_new_tokens=6, batch_size=4),
                               progress=False)
    single = [generate_answers(model, processor, [q], [i], GenerationSettings(max_new_tokens=6, batch_size=1),
                               progress=False)[0] for q, i in zip(questions, images)]
    assert batched == single
    assert all(isinstance(a, str) for a in batched)
    again = generate_answers(model, processor, questions, images, GenerationSettings(max_new_tokens=6, batch_size=3),
                             progress=False)
    assert again == batched  # deterministic


def test_build_messages_puts_images_first():
    assert build_messages("Q", 2)[0]["content"] == [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Q"}]
