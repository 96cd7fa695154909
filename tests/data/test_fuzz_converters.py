"""Property-based fuzzing of every raw-format converter, as `prepare` runs it (issue 16): records copied from the
public releases' layouts (hf_medvlm/data/examples.py), then fields dropped, added, retyped, nested and re-encoded.
Every record ends in a row, a deliberate None (filtered by design, e.g. another language), or a `RecordError`
(a counted skip) whose one-line message names the file and the entry; never another exception."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hf_medvlm.data import examples as rf
from hf_medvlm.data import prepare as prep
from hf_medvlm.data.schema import RecordError


@dataclass
class Source:
    name: str
    config: str
    write: object  # folder -> path of the raw file
    image_root: str | None = None  # relative to the folder
    raw_format: str = "native"


SOURCES = [
    Source("llava_med_alignment", "500k", rf.write_llava_med_alignment, "images"),
    Source("llava_med_instruct", "60k_inline_mention", rf.write_llava_med_instruct, "images"),
    Source("llava_med_qa50", "eval", lambda folder: rf.write_llava_med_qa50(folder, with_images=True), "images"),
    Source("pubmedvision", "alignment_vqa", lambda folder: rf.write_pubmedvision(folder)["alignment"]),
    Source("pubmedvision", "zh_instruction_tuning_vqa", lambda folder: rf.write_pubmedvision(folder)["chinese"]),
    Source("biomed_vital", "150k", rf.write_biomed_vital, "images"),
    Source("vqa_rad", "eval", rf.write_vqa_rad, "VQA_RAD Image Folder"),
    Source("vqa_rad", "train_sft", rf.write_vqa_rad, "VQA_RAD Image Folder"),
    Source("slake", "eval", rf.write_slake),
    Source("path_vqa", "eval", rf.write_path_vqa),
    Source("pmc_vqa", "eval", rf.write_pmc_vqa, "images"),
    *[Source(name, "eval", lambda folder: _write_llava_med_vqa(folder), "images", raw_format="llava_med")
      for name in ("vqa_rad", "slake", "path_vqa")],
]


def _write_llava_med_vqa(folder: Path) -> Path:
    """LLaVA-Med's own VQA files (`data_RAD`, `Slake1.0`, `pvqa` test.json), as tests/data/test_prepare.py and
    test_conformance.py copy them: int ids, upper-case or `yes/no` answer types, a numeric answer, and the
    misspelt `conversatons` key some released records carry."""
    from tests.data.conftest import write_jpeg

    write_jpeg(folder / "images" / "test" / "test_0001.jpg")
    rows = [{"id": 11, "image": "test/test_0001.jpg", "answer_type": "CLOSED", "question_type": "PRES",
             "conversations": [rf.turn("human", "Is there effusion?\n<image>"), rf.turn("gpt", "no")]},
            {"id": 12, "image": "test/test_0001.jpg", "answer_type": "OPEN", "question_type": "ORGAN",
             "conversations": [rf.turn("human", "<image>\nWhere is this?"), rf.turn("gpt", "urinary")]},
            {"id": 13, "image": "test/test_0001.jpg", "answer_type": "number",
             "conversatons": [rf.turn("human", "How many nuclei?\n<image>"), rf.turn("gpt", 3)]}]
    path = folder / "test.json"
    path.write_text(json.dumps(rows))
    return path


def _key(source: Source) -> str:
    return f"{source.name}/{source.config}" + ("" if source.raw_format == "native" else f"/{source.raw_format}")


@dataclass
class Prepared:
    convert: object
    records: list[dict]


def _prepared(source: Source, folder: Path) -> Prepared:
    """The per-record function `prepare` streams a file through, and the release file's records."""
    path = source.write(folder)
    args = prep.PrepareArguments(input_path=str(path), output_dir=str(folder / "unused"),
                                 image_root=str(folder / source.image_root) if source.image_root else None,
                                 config_name=source.config, raw_format=source.raw_format)
    spec = prep.SOURCES[source.name]
    features = prep.TRAINING_FEATURES if spec.configs[source.config].get("as_training") else spec.features
    split = "train" if features is prep.TRAINING_FEATURES else "test"
    records = [{k: v for k, v in r.items() if k != "_index"} for r in prep.iter_records(path)]
    return Prepared(prep._converter(spec, args, source.config, split, features), records)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """`prepared(key)`: the converter and seed records of one source (its repr stays one word, see `_Lookup`)."""
    sources = {_key(s): _prepared(s, tmp_path_factory.mktemp(s.name)) for s in SOURCES}
    return _Lookup(sources)


class _Lookup:
    """`prepared(key)`, with a one-word repr: hypothesis prints the test's arguments with a failing example."""

    def __init__(self, sources: dict):
        self.sources = sources

    def __call__(self, key: str) -> Prepared:
        return self.sources[key]

    def __repr__(self) -> str:
        return "prepared"


# JSON-like values as release files hold them, plus what CSV and Parquet readers hand over (bytes, huge ints).
SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30) | st.binary(max_size=20)
           | st.sampled_from(["", " ", "<image>", "<image>\n<image>", "yes", "No", "A", "../x.jpg", "/etc/passwd",
                              "\x00", "caf\u00e9", "caf\u00c3\u00a9", "\u202e\u05d0", "\ufeffid", "图中显示什么？"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                           max_size=4), max_leaves=12)


def _paths(value, prefix=()):
    """Every (key or index) path inside a record, the record itself excluded."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield prefix + (key,)
        yield from _paths(child, prefix + (key,))


def _parent(record, path):
    for key in path[:-1]:
        record = record[key]
    return record


@st.composite
def mutated(draw, records: list[dict]) -> dict:
    record = copy.deepcopy(draw(st.sampled_from(records)))
    for _ in range(draw(st.integers(1, 4))):
        paths = list(_paths(record))
        kind = draw(st.sampled_from(["drop", "retype", "extra", "nest", "reencode"]))
        if kind == "extra" or not paths:
            record[draw(st.text(max_size=12))] = draw(VALUES)
            continue
        path = draw(st.sampled_from(paths))
        parent, key = _parent(record, path), path[-1]
        if kind == "drop":
            del parent[key]
        elif kind == "retype":
            parent[key] = draw(VALUES)
        elif kind == "nest":
            parent[key] = draw(st.sampled_from([[parent[key]], {"value": parent[key]}, [parent[key], parent[key]]]))
        elif isinstance(parent[key], str):  # mojibake: UTF-8 read as Latin-1, or text cut mid-way
            parent[key] = draw(st.sampled_from([parent[key].encode().decode("latin-1"), parent[key][: len(parent[key]) // 2]]))
    return record


def assert_row_skip_or_named_error(convert, record: dict, index: int = 7) -> None:
    try:
        row = convert({**record, "_index": index})
    except RecordError as err:
        message = str(err)
        assert f"entry {index}:" in message and "\n" not in message, message
        return
    assert row is None or isinstance(row, dict)


@pytest.mark.parametrize("key", [_key(s) for s in SOURCES])
@given(data=st.data())
def test_every_record_is_a_row_a_skip_or_a_named_error(prepared, key, data):
    source = prepared(key)
    assert_row_skip_or_named_error(source.convert, data.draw(mutated(source.records)))


@pytest.mark.parametrize("key", [_key(s) for s in SOURCES])
def test_the_release_records_themselves_convert(prepared, key):
    """The fuzzing starts from records that convert: the seeds are the releases' own layouts."""
    source = prepared(key)
    outcomes = []
    for record in source.records:
        try:
            outcomes.append(source.convert({**record, "_index": 0}))
        except RecordError:
            outcomes.append("skip")  # some fixtures carry the release's own bad records on purpose
    assert any(isinstance(row, dict) for row in outcomes)


# ------------------------------------------------------------------------------- what the fuzzing found (issue 16)


def test_a_record_without_id_that_holds_bytes_is_a_named_skip(prepared):
    """Was: TypeError from json.dumps while writing the message (a Parquet release hands images over as bytes)."""
    source = prepared("biomed_vital/150k")
    record = {k: v for k, v in source.records[0].items() if k != "id"}
    with pytest.raises(RecordError, match=r"entry 3: record .*: field 'id' is missing") as caught:
        source.convert({**record, "image": b"\x89PNG", "_index": 3})
    assert caught.value.reason == "bad_field"


@pytest.mark.parametrize("image", [{"bytes": "b'\\xff\\xd8'", "path": None}, {"bytes": b"\xff\xd8", "path": [None]}])
def test_an_embedded_image_of_the_wrong_types_is_a_named_skip(prepared, image):
    """Was: TypeError from pathlib (`path` a list) or from the image check (`bytes` a string)."""
    source = prepared("path_vqa/eval")
    with pytest.raises(RecordError, match=r"entry 5: .*an embedded image is \{'bytes': bytes, 'path': str\}") as caught:
        source.convert({**source.records[0], "image": image, "_index": 5})
    assert caught.value.reason == "bad_field"


@pytest.mark.parametrize("conversations", [1, {"from": "human", "value": "x"}, "ab"])
def test_llava_med_vqa_conversations_that_are_not_a_list_are_a_named_skip(prepared, conversations):
    """Was: TypeError from len() (an int) or slicing (a dict) in the `--raw_format llava_med` converter."""
    source = prepared("vqa_rad/eval/llava_med")
    with pytest.raises(RecordError, match=r"entry 4: record '11': field 'conversations' needs a question") as caught:
        source.convert({**source.records[0], "conversations": conversations, "_index": 4})
    assert caught.value.reason == "no_conversation"
