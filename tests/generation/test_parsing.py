from hf_medvlm.generation.parsing import (
    compile_turn_filters,
    filter_turn_pairs,
    parse_reformat_json,
    parse_score_line,
    parse_user_assistant_turns,
)
from hf_medvlm.generation.prompts import load_prompt_file

# ---------------------------------------------------------------------------------------------- User/Assistant turns


def test_turns_clean_transcript():
    text = "User: Which side has the effusion?\nAssistant: The right side.\n\nUser: Is the heart enlarged?\nAssistant: Yes."
    result = parse_user_assistant_turns(text)
    assert result.pairs == [("Which side has the effusion?", "The right side."), ("Is the heart enlarged?", "Yes.")]
    assert not result.drops


def test_turns_chatter_markdown_multiline_and_missing_turns():
    text = (
        "Sure! Here is a conversation about the image:\n\n"
        "**User:** What modality is this?\n"
        "**Assistant:** An axial CT of the abdomen.\n"
        "It was acquired after contrast.\n"
        "- the liver is enlarged\n"
        "User: What about the spleen?\n"  # never answered: the next tag is another question
        "Human: Is there free fluid?\n"
        "GPT: No free fluid is visible.\n"
        "User: Anything else?\n"  # trailing question, reply cut off
    )
    result = parse_user_assistant_turns(text)
    assert result.pairs[0] == (
        "What modality is this?",
        "An axial CT of the abdomen.\nIt was acquired after contrast.\n- the liver is enlarged",
    )
    assert result.pairs[1] == ("Is there free fluid?", "No free fluid is visible.")
    assert result.drops == {"preamble": 1, "unanswered_question": 2}


def test_turns_orphan_answer_and_empty_reply():
    result = parse_user_assistant_turns("Assistant: I see a chest X-ray.\nUser: Is it normal?\nAssistant:  ")
    assert result.pairs == []
    assert result.drops == {"orphan_answer": 1, "empty_turn": 1}
    assert parse_user_assistant_turns("").drops == {"no_turns": 1}


def test_turn_filters_count_each_reason_with_packaged_rules():
    filters = compile_turn_filters(load_prompt_file("llava_med_turn_filters"))
    pairs = [
        ("What does the caption say?", "It describes a CT."),
        ("Is a mass visible?", "I'm sorry, but I cannot see the image."),
        ("What did the authors find?", "A lesion."),
        ("What organ is shown?", "The liver, in an axial slice."),
        ("Where is the contextual clue?", "Contextually, the liver."),  # no whole-word match: kept
    ]
    kept, drops = filter_turn_pairs(pairs, filters)
    assert kept == [pairs[3], pairs[4]]
    assert drops == {"mentions_text_source": 1, "refusal": 1, "keyword": 1}


# ---------------------------------------------------------------------------------------------- PubMedVision JSON

GOOD = '{"Image_description": "Axial CT.", "QA-query": "What organ?", "QA-answer": "The liver."}'


def test_reformat_clean_and_fenced_with_chatter():
    parsed = parse_reformat_json(GOOD)
    assert parsed.ok and not parsed.repaired
    assert (parsed.image_description, parsed.qa_query, parsed.qa_answer) == ("Axial CT.", "What organ?", "The liver.")
    fenced = f"Here is the JSON you asked for:\n```json\n{GOOD}\n```\nLet me know if you need more."
    assert parse_reformat_json(fenced).qa_answer == "The liver."


def test_reformat_repairs_slightly_off_json():
    raw_newline = '{"Image_description": "Line one.\nLine two.", "QA-query": "Q?", "QA-answer": "A.",}'
    parsed = parse_reformat_json(raw_newline)
    assert parsed.ok and parsed.repaired and parsed.image_description == "Line one.\nLine two."
    smart = "{\u201cImage_description\u201d: \u201cX-ray.\u201d, \u201cQA-query\u201d: \u201cQ?\u201d, \u201cQA-answer\u201d: \u201cA.\u201d}"
    assert parse_reformat_json(smart).qa_query == "Q?"
    truncated = '{"Image_description": "MRI.", "QA-query": "Q?", "QA-answer": "The lesion is'
    parsed = parse_reformat_json(truncated)
    assert parsed.ok and parsed.qa_answer == "The lesion is"
    aliases = '{"image description": "Histology.", "QA query": "Q?", "QA_answer": "A."}'
    parsed = parse_reformat_json(aliases)
    assert parsed.ok and parsed.repaired and parsed.image_description == "Histology."
    single = "{'Image_description': 'US.', 'QA-query': 'Q?', 'QA-answer': 'A.'}"
    assert parse_reformat_json(single).ok


def test_reformat_rejects_with_reason():
    assert parse_reformat_json("").reason == "empty_reply"
    assert parse_reformat_json("I cannot help with this image.").reason == "no_json_object"
    assert parse_reformat_json('{"Image_description": "x" "QA-query": }').reason == "invalid_json"
    assert parse_reformat_json('{"Image_description": "x", "QA-answer": "a"}').reason == "missing_QA-query"
    assert parse_reformat_json('{"Image_description": " ", "QA-query": "q", "QA-answer": "a"}').reason == (
        "empty_Image_description"
    )


# ---------------------------------------------------------------------------------------------- BioMed-VITAL scores


def test_score_line_strict():
    assert parse_score_line("8 7 10\n\nThe second answer lacks depth.", 3).scores == [8, 7, 10]
    assert parse_score_line("\n  6   9  \nok", 2).scores == [6, 9]
    assert parse_score_line("", 1).reason == "empty_reply"
    assert parse_score_line("Scores: 8 7", 2).reason == "no_score_line"
    assert parse_score_line("Q1: 8\nQ2: 7", 2).reason == "no_score_line"
    assert parse_score_line("7.5 8", 2).reason == "no_score_line"
    assert parse_score_line("8 11", 2).reason == "score_out_of_range"
    assert parse_score_line("8 7 6", 2).reason == "wrong_score_count"
    assert parse_score_line("8, 7", 2).reason == "no_score_line"
