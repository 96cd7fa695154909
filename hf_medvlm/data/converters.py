"""Pure per-record converters from every raw release format to the training or eval schema.

Each `convert_*` takes one raw record (a dict as read from the release file) plus an `ImageResolver`, returns one row
of the target schema, and raises `RecordError` (with a skip reason) for a bad record. Training and evaluation code
can call them directly; `hf_medvlm.data.prepare` streams whole files through them.

Format facts (field names, quirks) follow the original releases: LLaVA-Med (`conversatons` typo, `<image>` before
or after the first question), PubMedVision (1..29 images, no `<image>` markers, Chinese file keys), BioMed-VITAL
(integer ids, LLaVA-Med image names, no `<image>` markers in its generated conversations), VQA-RAD / SLAKE /
PathVQA / PMC-VQA benchmark files. Each test fixture in `tests/data/test_conformance.py` names the public file or
repository it copies. How images are placed and checked (never dropped while the text is kept) is described with
the training schema in dataset_scripts/README.md.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..files import confined_path
from .instructions import pick_instruction
from .schema import DOMAINS, IMAGE_TOKEN, RecordError, check_image_bytes, image_block, text_block, text_to_content

__all__ = [
    "ImageResolver",
    "conversations_to_messages",
    "domain_flags",
    "convert_llava_med",
    "convert_llava_med_alignment",
    "convert_llava_med_qa50",
    "in_text_mentions",
    "convert_pubmedvision",
    "convert_biomed_vital",
    "convert_generated",
    "convert_llava_vqa",
    "convert_vqa_rad",
    "convert_slake",
    "convert_path_vqa",
    "convert_pmc_vqa",
    "closed_if_yes_no",
    "vqa_to_training_row",
]

ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


class ImageResolver:
    """Turns an image reference (relative path, or `{"bytes", "path"}`) into checked `{"bytes", "path"}`.

    Missing files raise `RecordError("missing_image")`, files that don't fully decode `"undecodable_image"`, paths
    that are absolute or leave `root` through `..` `"unsafe_image_path"` (unless `confine=False`: paths relative to
    `root`, wherever they lead, as `hf-medvlm generate` writes them relative to its output file's folder).
    """

    def __init__(self, root: str | Path | None, *, verify: bool = True, confine: bool = True):
        self.root = Path(root) if root else None
        self.verify = verify
        self.confine = confine

    def __call__(self, ref, record_id: str) -> dict:
        if isinstance(ref, dict) and ref.get("bytes"):
            data, path = ref["bytes"], ref.get("path")
            if not isinstance(data, bytes) or not isinstance(path, (str, type(None))):
                raise RecordError("bad_field", f"record {record_id!r}: an embedded image is {{'bytes': bytes, 'path': "
                                  f"str}}, got {type(data).__name__} bytes and path {path!r}")
            name = Path(path or f"{record_id}.png").name
        else:
            path = self._path(ref, record_id)
            data, name = path.read_bytes(), path.name
        if self.verify:
            check_image_bytes(data, f"record {record_id!r}, image {name!r}")
        return {"bytes": data, "path": name}

    def _path(self, ref, record_id: str) -> Path:
        if not isinstance(ref, str) or not ref.strip():
            raise RecordError("missing_image", f"record {record_id!r}: no image reference (got {ref!r})")
        try:  # a record never names a file outside the image root: absolute paths and escaping '..' are refused
            path = (Path(ref) if self.root is None else confined_path(self.root, ref) if self.confine
                    else self.root / ref)
        except ValueError as err:
            raise RecordError("unsafe_image_path", f"record {record_id!r}: image path {err}") from None
        if not path.is_file():
            raise RecordError("missing_image", f"record {record_id!r}: image file {str(path)!r} does not exist")
        return path


# ------------------------------------------------------------------------------------------ conversations


def _turn_text(turn, record_id: str, index: int) -> tuple[str, str]:
    if not isinstance(turn, dict) or "from" not in turn and "role" not in turn:
        raise RecordError("no_conversation", f"record {record_id!r}: turn {index} is not a {{from, value}} object")
    speaker = turn.get("from", turn.get("role"))
    role = ROLES.get(str(speaker).lower())
    if role is None:
        raise RecordError("non_alternating_roles",
                          f"record {record_id!r}: turn {index} has unknown speaker {speaker!r}")
    value = turn.get("value", turn.get("content"))
    return role, "" if value is None else str(value)


def conversations_to_messages(conversations, record_id: str, num_images: int, *,
                              insert_images: bool = False) -> list[dict]:
    """LLaVA `[{from, value}]` turns -> TRL messages with one `{"type": "image"}` block per image.

    `<image>` markers become image blocks. With `insert_images` (sources whose text has no markers, e.g.
    PubMedVision) `num_images` blocks are put at the start of the first user turn. The first turn's image blocks go
    in front of its text, as upstream LLaVA training does, whichever end the marker was on.
    """
    if not isinstance(conversations, list) or not conversations:
        raise RecordError("no_conversation", f"record {record_id!r}: 'conversations' is empty or missing")
    messages = []
    for i, turn in enumerate(conversations):
        role, text = _turn_text(turn, record_id, i)
        content = text_to_content(text) if role == "user" else [text_block(text.replace(IMAGE_TOKEN, "").strip())]
        messages.append({"role": role, "content": content})
    first_user = next((m for m in messages if m["role"] == "user"), None)
    n_markers = sum(b["type"] == "image" for m in messages for b in m["content"])
    if insert_images and n_markers == 0 and first_user is not None:
        first_user["content"] = [image_block() for _ in range(num_images)] + first_user["content"]
    elif n_markers != num_images:
        raise RecordError("image_count_mismatch", f"record {record_id!r}: {n_markers} {IMAGE_TOKEN} markers in the "
                          f"text but {num_images} images")
    if first_user is not None:  # a stable sort: images first, each kind in its order
        first_user["content"] = sorted(first_user["content"], key=lambda block: block["type"] != "image")
    return messages


def domain_flags(raw, record_id: str) -> dict | None:
    """LLaVA-Med's `domain` object (five booleans) -> the schema's struct; None when the source has none."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or any(k not in DOMAINS or not isinstance(v, bool) for k, v in raw.items()):
        raise RecordError("bad_field", f"record {record_id!r}: field 'domain' must map {list(DOMAINS)} to true/false, "
                          f"got {raw!r}")
    return {name: raw.get(name, False) for name in DOMAINS}


def _record_id(raw: dict, key: str = "id") -> str:
    value = raw.get(key)
    if value is None or str(value).strip() == "":
        raise RecordError("bad_field", f"record {json.dumps(raw, default=repr)[:80]}...: field {key!r} is missing")
    return str(value)


def _training_row(record_id, source, images, messages, domain=None, modality=None, body_part=None) -> dict:
    return {"id": record_id, "source": source, "images": images, "messages": messages, "domain": domain,
            "modality": modality, "body_part": body_part}


# -------------------------------------------------------------------------------------------- LLaVA-Med


def _llava_conversations(raw: dict):
    # The original training code falls back to the misspelt key, which some released records use.
    return raw.get("conversations", raw.get("conversatons"))


def _image_reference(raw: dict, record_id: str, keys: tuple[str, ...]) -> str:
    """The one image a single-image record names, under the first of `keys` it has; missing is an error."""
    refs = {key: raw[key] for key in keys if raw.get(key) not in (None, "")}
    if not refs:
        raise RecordError("missing_image", f"record {record_id!r}: no image under {' or '.join(map(repr, keys))} "
                          f"(keys: {sorted(k for k in raw if k != '_index')})")
    if len(set(map(str, refs.values()))) > 1:
        raise RecordError("bad_field", f"record {record_id!r}: fields {sorted(refs)} name different images {refs}")
    return next(iter(refs.values()))


def convert_llava_med(raw: dict, resolve: ImageResolver, source: str = "llava_med_instruct",
                      image_keys: tuple[str, ...] = ("image",)) -> dict:
    """LLaVA-Med instruct record (`id`, `image`, `domain`, `conversations`/`conversatons`) -> training row.

    Every released record has an image; one whose conversation lost its `<image>` turn (the original postprocessing
    drops turns that mention the caption) gets the image in front of its first question.
    """
    record_id = _record_id(raw)
    images = [resolve(_image_reference(raw, record_id, image_keys), record_id)]
    messages = conversations_to_messages(_llava_conversations(raw), record_id, len(images), insert_images=True)
    return _training_row(record_id, source, images, messages, domain_flags(raw.get("domain"), record_id))


def convert_llava_med_alignment(raw: dict, resolve: ImageResolver, source: str = "llava_med_alignment") -> dict:
    """Stage-1 caption pair; a human turn with no instruction gets a brief-description instruction (Table 6)."""
    row = convert_llava_med(raw, resolve, source)
    first = row["messages"][0]  # conversations_to_messages refuses an empty conversation
    if first["role"] == "user" and not any(b["type"] == "text" for b in first["content"]):
        first["content"].append(text_block(pick_instruction(row["id"], "brief")))
    return row


_ENTITY_KEYS = {"type", "entity_id", "start_tok", "end_tok"}


def _entity_ok(entity) -> bool:
    return (isinstance(entity, dict) and set(entity) == _ENTITY_KEYS
            and all(isinstance(entity[k], int) and not isinstance(entity[k], bool) for k in ("start_tok", "end_tok")))


def _mention(item, record_id: str, index: int) -> dict:
    if isinstance(item, str):  # the fig-captions file also has bare sentences; qa50's 193 rows have none
        return {"tokens": item, "entities": []}
    entities = (item.get("entities") or []) if isinstance(item, dict) else None
    if (not isinstance(item, dict) or set(item) - {"tokens", "entities"} or not isinstance(item.get("tokens"), str)
            or not isinstance(entities, list) or not all(map(_entity_ok, entities))):
        raise RecordError("bad_field", f"record {record_id!r}: field 'in_text_mention'[{index}] must be a sentence or "
                          f"{{tokens, entities: [{{type, entity_id, start_tok, end_tok}}]}}, got {item!r}")
    return {"tokens": item["tokens"], "entities": entities}


def in_text_mentions(raw, record_id: str) -> list[dict] | None:
    """LLaVA-Med's `in_text_mention` (null, or a list of `{tokens, entities}` / sentences) as typed structs."""
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise RecordError("bad_field", f"record {record_id!r}: field 'in_text_mention' must be a list, got {raw!r}")
    return [_mention(item, record_id, i) for i, item in enumerate(raw)]


QA50_NO_IMAGES = ("qa50 images are not in LLaVA-Med's public release: point --image_root at your copy, or pass "
                  "--text_only to write the questions without images (enough for the text-only GPT-4 judge)")


def _qa50_image(raw: dict, record_id: str, resolve: ImageResolver | None):
    try:
        return (resolve or ImageResolver(None))(_image_reference(raw, record_id, ("image",)), record_id)
    except RecordError as err:
        if err.reason != "missing_image":
            raise
        raise RecordError("missing_image", f"{err}; {QA50_NO_IMAGES}") from None


def convert_llava_med_qa50(raw: dict, resolve: ImageResolver | None = None, *, text_only: bool = False) -> dict:
    """qa50 chat-eval question -> `QA50_FEATURES` row.

    The image is required (a missing one is a `missing_image` error) unless `text_only`, which writes every row with
    `image` null on purpose. `domain` and `in_text_mention` keep the release's structure.
    """
    record_id = _record_id(raw, "question_id")
    text = raw.get("text")
    question = str(text or "").replace(IMAGE_TOKEN, "").strip()
    if not question:
        raise RecordError("empty_turn", f"record {record_id!r}: field 'text' (the question) is empty")
    image = None if text_only else _qa50_image(raw, record_id, resolve)
    mentions = in_text_mentions(raw.get("in_text_mention"), record_id)
    domain = domain_flags(raw.get("domain"), record_id)
    if not domain or not any(domain.values()):
        raise RecordError("bad_field", f"record {record_id!r}: field 'domain' has no true flag "
                          f"({raw.get('domain')!r}); the qa50 report groups every question by its first true flag")
    return {
        "id": record_id, "source": "llava_med_qa50", "image": image, "image_name": raw.get("image"),
        "pair_id": raw.get("pair_id"), "text": text, "question": question, "gpt4_answer": raw.get("gpt4_answer"),
        "fig_caption": raw.get("fig_caption"), "fig_label": raw.get("fig_label"), "in_text_mention": mentions,
        "domain": domain, "type": raw.get("type"),
    }


# ------------------------------------------------------------------------------------------ PubMedVision


def convert_pubmedvision(raw: dict, resolve: ImageResolver, conversation_key: str = "conversations",
                         source: str = "pubmedvision") -> dict:
    """PubMedVision row (`image` is a list of 1..29 paths, text has no `<image>`) -> training row."""
    record_id = _record_id(raw)
    refs = raw.get("image")
    refs = [refs] if isinstance(refs, (str, dict)) else refs
    if not refs:
        raise RecordError("missing_image", f"record {record_id!r}: field 'image' is empty")
    if not isinstance(refs, list):
        raise RecordError("bad_field", f"record {record_id!r}: field 'image' is a {type(refs).__name__} ({refs!r}), "
                          "not a path or a list of paths")
    images = [resolve(ref, record_id) for ref in refs]
    messages = conversations_to_messages(raw.get(conversation_key), record_id, len(images), insert_images=True)
    return _training_row(record_id, source, images, messages, modality=raw.get("modality"),
                         body_part=raw.get("body_part"))


# ---------------------------------------------------------------------------------------- BioMed-VITAL


def convert_biomed_vital(raw: dict, resolve: ImageResolver) -> dict:
    """BioMed-VITAL record (integer `id`, `image` = `<pair_id>.jpg` from the PMC URL list) -> training row.

    Its generator writes no `<image>` markers, so the image goes in front of the first question; its clinician
    demonstrations name the image under `imgs`, which is read as well.
    """
    return convert_llava_med(raw, resolve, source="biomed_vital", image_keys=("image", "imgs"))


# ------------------------------------------------------------------------------------ `hf-medvlm generate`


def convert_generated(raw: dict, resolve: ImageResolver) -> dict:
    """A training-schema row as `hf-medvlm generate` writes it (`images` paths relative to its file, `messages` with
    content blocks, `domain` one LLaVA-Med domain name or empty) -> training row; extra columns are dropped."""
    record_id = _record_id(raw)
    refs, messages = raw.get("images") or [], raw.get("messages")
    if not isinstance(refs, list) or not isinstance(messages, list):
        raise RecordError("bad_field", f"record {record_id!r}: 'images' and 'messages' must be lists")
    images = [resolve(ref, record_id) for ref in refs]
    try:
        messages = [{"role": m["role"], "content": [{"type": b["type"], "text": b.get("text")} for b in m["content"]]}
                    for m in messages]
    except (KeyError, TypeError) as err:
        raise RecordError("bad_field", f"record {record_id!r}: field 'messages' must hold {{role, content: [{{type, "
                          f"text}}]}} objects ({type(err).__name__}: {err})") from None
    domain = raw.get("domain")
    flags = domain_flags(domain, record_id) if isinstance(domain, dict) else (
        {name: name == domain for name in DOMAINS} if domain in DOMAINS else None)
    return _training_row(record_id, raw.get("source") or "generated", images, messages, flags,
                         raw.get("modality") or None, raw.get("body_part") or None)


# -------------------------------------------------------------------------------------------- VQA benches


def closed_if_yes_no(answer: str) -> str:
    return "closed" if answer.strip().lower() in ("yes", "no") else "open"


def _eval_row(record_id, source, image, question, answer, answer_type, question_type="", options=None,
              answer_label=None) -> dict:
    question = str(question or "").replace(IMAGE_TOKEN, "").strip()
    answer = str(answer if answer is not None else "").strip()
    for name, value in (("question", question), ("answer", answer)):
        if not value:
            raise RecordError("empty_turn", f"record {record_id!r}: field {name!r} is empty")
    return {"id": record_id, "source": source, "image": image, "question": question, "answer": answer,
            "answer_type": answer_type, "question_type": question_type or "", "options": options,
            "answer_label": answer_label}


def vqa_to_training_row(row: dict) -> dict:
    """An eval-schema VQA record as a one-turn training conversation (downstream VQA fine-tuning, LLaVA-Med §4)."""
    messages = [{"role": "user", "content": [image_block(), text_block(row["question"])]},
                {"role": "assistant", "content": [text_block(row["answer"])]}]
    return _training_row(row["id"], row["source"], [row["image"]], messages)


# LLaVA-Med's PathVQA files type answers `yes/no`, `number` or `other`; its eval code reads those as below.
_ANSWER_TYPES = {"open": "open", "closed": "closed", "yes/no": "closed", "number": "open", "other": "open"}


def _answer_type(value, record_id: str) -> str:
    kind = _ANSWER_TYPES.get(str(value or "").strip().lower())
    if kind is None:
        raise RecordError("bad_field", f"record {record_id!r}: field 'answer_type' must be one of "
                          f"{sorted(_ANSWER_TYPES)} (any case), got {value!r}")
    return kind


def convert_llava_vqa(raw: dict, resolve: ImageResolver, source: str) -> dict:
    """LLaVA-Med's VQA files (`data_RAD`, `Slake1.0`, `pvqa`: id, image, answer_type, conversations) -> eval row."""
    record_id = _record_id(raw)
    turns = _llava_conversations(raw)
    if not isinstance(turns, list) or len(turns) < 2 or not all(isinstance(t, dict) for t in turns[:2]):
        raise RecordError("no_conversation", f"record {record_id!r}: field 'conversations' needs a question and an "
                          "answer turn")
    answer, kind = turns[1].get("value"), raw.get("answer_type")
    if kind is None:  # without a type, closed questions are exactly the yes/no ones
        kind = closed_if_yes_no(str(answer))
    return _eval_row(record_id, source, resolve(raw.get("image"), record_id), turns[0].get("value"), answer,
                     _answer_type(kind, record_id), raw.get("question_type"))


def convert_vqa_rad(raw: dict, resolve: ImageResolver, split: str | None = None) -> dict | None:
    """VQA-RAD public JSON (`qid`, `image_name`, `question`, `answer` (sometimes a number), `answer_type`
    (sometimes with trailing spaces), `question_type`) or the Hub parquet (`image`, `question`, `answer`)."""
    phrase_type = str(raw.get("phrase_type") or "")
    if split and phrase_type and phrase_type.startswith("test") != (split == "test"):
        return None  # the public JSON holds both splits; test questions have phrase_type test_freeform/test_para
    record_id = str(raw.get("qid", raw.get("id", raw.get("_index", ""))))
    if not record_id:
        raise RecordError("bad_field", f"record {json.dumps(raw, default=str)[:80]}: field 'qid' is missing")
    answer = str(raw.get("answer", "")).strip()
    kind = raw.get("answer_type") or closed_if_yes_no(answer)
    image = resolve(raw.get("image_name", raw.get("image")), record_id)
    return _eval_row(record_id, "vqa_rad", image, raw.get("question"), answer, _answer_type(kind, record_id),
                     str(raw.get("question_type") or "").strip())


def convert_slake(raw: dict, resolve: ImageResolver, language: str = "en") -> dict | None:
    """SLAKE JSON row; rows of another `q_lang` return None (a selection, not a skip). Images at `imgs/<img_name>`."""
    if raw.get("q_lang") != language:
        return None
    record_id = _record_id(raw, "qid")
    question_type = str(raw.get("content_type") or "")
    return _eval_row(record_id, "slake", resolve(f"imgs/{raw.get('img_name')}", record_id), raw.get("question"),
                     raw.get("answer"), _answer_type(raw.get("answer_type"), record_id), question_type)


def convert_path_vqa(raw: dict, resolve: ImageResolver) -> dict:
    """PathVQA (Hub parquet `image`, `question`, `answer`; no id, so the reader's `_index`); closed = yes/no."""
    record_id = str(raw.get("id", raw.get("_index", "")))
    answer = str(raw.get("answer", "")).strip()
    kind = closed_if_yes_no(answer)
    return _eval_row(record_id, "path_vqa", resolve(raw.get("image"), record_id), raw.get("question"), answer, kind,
                     "yes/no" if kind == "closed" else "other")


_CHOICE_PREFIX = re.compile(r"^\s*[A-D]\s*[:.)]\s*")


def convert_pmc_vqa(raw: dict, resolve: ImageResolver) -> dict:
    """PMC-VQA CSV row (`Figure_path`, `Question`, `Answer`, `Choice A..D` prefixed "A:", `Answer_label`)."""
    record_id = str(raw.get("index", raw.get("_index", raw.get("Figure_path"))))
    options = [_CHOICE_PREFIX.sub("", str(raw.get(f"Choice {letter}") or "")).strip() for letter in "ABCD"]
    label = str(raw.get("Answer_label") or "").strip().upper()
    if any(not o for o in options) or label not in ("A", "B", "C", "D"):
        raise RecordError("bad_field", f"record {record_id!r}: needs four non-empty choices and an Answer_label "
                          f"A-D, got label {label!r}")
    answer = options[ord(label) - 65]
    return _eval_row(record_id, "pmc_vqa", resolve(raw.get("Figure_path"), record_id), raw.get("Question"), answer,
                     "closed", "multiple_choice", options=options, answer_label=label)
