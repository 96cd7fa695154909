import random

import pytest
import torch

from hf_medvlm.training.sampler import ModalityLengthGroupedSampler, image_counts, padded_tokens


def _data(n=300, seed=0):
    rng = random.Random(seed)
    has_image = [rng.random() < 0.7 for _ in range(n)]
    lengths = [(576 if img else 0) + rng.randint(20, 600) for img in has_image]
    return lengths, has_image


@pytest.mark.parametrize("step_size", [1, 4, 16])
def test_every_step_is_single_modality_and_every_sample_is_seen(step_size):
    lengths, has_image = _data()
    sampler = ModalityLengthGroupedSampler(lengths, has_image, step_size=step_size, seed=3)
    order = list(sampler)
    assert len(order) == len(sampler) and len(order) % step_size == 0
    assert set(order) == set(range(len(lengths)))
    for start in range(0, len(order), step_size):
        assert len({has_image[i] for i in order[start : start + step_size]}) == 1
    # Repeats only pad each modality to whole steps.
    assert len(order) - len(lengths) <= 2 * (step_size - 1)


def test_order_depends_only_on_seed_and_epoch():
    lengths, has_image = _data()
    a, b = (ModalityLengthGroupedSampler(lengths, has_image, step_size=4, seed=1) for _ in range(2))
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)
    a.set_epoch(1)
    assert list(a) == list(b)


def test_first_step_holds_the_longest_sample():
    lengths, has_image = _data()
    order = list(ModalityLengthGroupedSampler(lengths, has_image, step_size=8, seed=0))
    assert max(lengths[i] for i in order[:8]) == max(lengths)


def test_padding_is_far_below_random_batching():
    lengths, has_image = _data(n=2000)
    batch = 8
    grouped = list(ModalityLengthGroupedSampler(lengths, has_image, step_size=batch, seed=0))
    random_order = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(0)).tolist()
    pad_grouped, _ = padded_tokens(lengths, [grouped[i : i + batch] for i in range(0, len(grouped), batch)])
    pad_random, _ = padded_tokens(lengths, [random_order[i : i + batch] for i in range(0, len(lengths), batch)])
    assert pad_grouped * 2 < pad_random


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="lengths"):
        ModalityLengthGroupedSampler([1, 2], [True], step_size=1)
    with pytest.raises(ValueError, match="step_size"):
        ModalityLengthGroupedSampler([1], [True], step_size=0)


def test_image_counts_reads_a_single_image_column_and_an_images_list_column():
    from datasets import Dataset, Features, Image, Sequence, Value
    from PIL import Image as PILImage

    pixel = PILImage.new("RGB", (2, 2))
    single = Dataset.from_dict({"image": [pixel, None, pixel], "text": ["a", "b", "c"]},
                               features=Features({"image": Image(), "text": Value("string")}))
    assert image_counts(single) == [1, 0, 1]  # a row without an image is text-only, not one image
    listed = Dataset.from_dict({"images": [[pixel, pixel], [], None]}, features=Features({"images": Sequence(Image())}))
    assert image_counts(listed) == [2, 0, 0]
    assert image_counts(Dataset.from_dict({"text": ["a"]})) == [0]
