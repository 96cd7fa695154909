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


def test_generation_stops_at_the_checkpoints_stop_string_and_cuts_it(tiny_llava_med):
    """A LLaVA-Med v1.0 checkpoint ends answers with "###", not EOS: its generation config names the stop string, and
    the answer is the text before it. Here the stop string is a piece of the tiny model's own greedy output."""
    import copy

    from hf_medvlm.eval.generation import cut_at_stop_strings

    model, processor = copy.deepcopy(tiny_llava_med[0]), tiny_llava_med[1]
    args = (processor, ["Is there an effusion?"], [[make_rgb_image(seed=0)]])
    settings = GenerationSettings(max_new_tokens=12, batch_size=1)
    full = generate_answers(model, *args, settings, progress=False)[0]
    words = full.split()
    assert len(words) >= 4, full
    stop = words[2]
    model.generation_config.stop_strings = [stop]
    stopped = generate_answers(model, *args, settings, progress=False)[0]
    assert stopped == full.split(stop, 1)[0].strip() and stop not in stopped
    assert cut_at_stop_strings(" yes, an effusion\n###", ["###"]) == "yes, an effusion"
    assert cut_at_stop_strings("no stop here", "###") == "no stop here"
