"""Fixtures for the eval tests: a tiny saved LlavaMed and a tiny eval set in the eval schema, written as Parquet."""

import pytest

from tests.conftest import make_rgb_image

EVAL_ROWS = [
    dict(id="q1", question="Is there a pleural effusion?", answer="yes", answer_type="closed"),
    dict(id="q2", question="Is the heart enlarged?", answer="no", answer_type="closed"),
    dict(id="q3", question="Which organ is shown?", answer="liver", answer_type="open"),
    dict(id="q4", question="Where is the lesion?", answer="left lung", answer_type="open"),
    dict(id="q5", question="What modality is this?", answer="ct", answer_type="open"),
]


def write_eval_parquet(path, rows, images=None):
    import datasets

    features = datasets.Features({
        "id": datasets.Value("string"), "image": datasets.Image(), "question": datasets.Value("string"),
        "answer": datasets.Value("string"), "answer_type": datasets.Value("string"),
        "question_type": datasets.Value("string"), "options": datasets.List(datasets.Value("string")),
        "answer_label": datasets.Value("string"),
    })
    records = []
    for i, row in enumerate(rows):
        image = make_rgb_image(seed=i) if images is None else images[i]
        records.append(dict(dict(question_type="", options=[], answer_label=""), image=image, **row))
    datasets.Dataset.from_list(records, features=features).to_parquet(str(path))
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_llava_med):
    model, processor = tiny_llava_med
    folder = tmp_path_factory.mktemp("tiny_llava_med")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture
def vqa_parquet(tmp_path):
    return write_eval_parquet(tmp_path / "eval.parquet", EVAL_ROWS)
