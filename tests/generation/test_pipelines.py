"""Each pipeline end to end against the loopback OpenAI server (scripted replies, 429/500, timeouts, real tiny-model
generation) and with the local transformers backend; kill-and-resume."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from hf_medvlm.generation.parsing import parse_reformat_json
from hf_medvlm.generation.pipelines import GenerateArguments, run_method
from hf_medvlm.testing.openai_server import Reply, TransformersResponder, message_texts, start_openai_server

TRANSCRIPT = (
    "Here is the conversation:\n"
    "User: What imaging modality is shown?\nAssistant: An axial CT image.\n"
    "User: What does the caption say about the liver?\nAssistant: It says there is a lesion.\n"
    "User: Is there a lesion?\nAssistant: Yes, a dark area with a bright rim.\n"
    "User: Can you see the spleen?\n"
)
GOOD_JSON = '{"Image_description": "A detailed view.", "QA-query": "What is shown?", "QA-answer": "A lesion."}'


def _last_text(body):
    return message_texts(body["messages"])[-1]


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _args(figure_records, out, **kw):
    return GenerateArguments(input=str(figure_records), output_dir=str(out), **kw)


def test_llava_med_self_instruct_over_http_with_retries(figure_records, tmp_path, fast_backend):
    with start_openai_server(lambda body: TRANSCRIPT) as server:
        server.enqueue(Reply.rate_limited(0), Reply.server_error(500))
        report = run_method("llava-med", _args(figure_records, tmp_path / "out"), fast_backend(server.url),
                            concurrency=2, progress=False)
        bodies = [r.body for r in server.chat_requests()]
    assert report["requests"]["done"] == 5 and report["requests"]["failed"] == 0
    assert len(bodies) == 7  # 5 records + one 429 + one 500 retried
    first = bodies[-1]["messages"]
    assert first[0]["role"] == "system" and "cannot see the figure" in first[0]["content"]
    assert first[1]["content"].startswith("Figure Caption:\nFigure 2: Chest radiograph")  # the Figure 5 example
    assert any(m["content"].startswith("Figure Caption:\nFigure 1: Axial") for m in (b["messages"][-1] for b in bodies))
    assert all(isinstance(b["messages"][-1]["content"], str) for b in bodies)  # blind: no image sent
    rows = _read(tmp_path / "out" / "data" / "conversations.jsonl")
    assert len(rows) == 5
    texts = [b["text"] for m in rows[0]["messages"] for b in m["content"] if b["type"] == "text"]
    assert texts == ["What imaging modality is shown?", "An axial CT image.", "Is there a lesion?",
                     "Yes, a dark area with a bright rim."]
    assert rows[0]["messages"][0]["content"][0] == {"type": "image"} and rows[0]["source"] == "llava_med_self_instruct"
    parsing = report["parsing"]
    assert parsing["dropped_turns"] == {"preamble": 5, "mentions_text_source": 5, "unanswered_question": 5}


def test_pubmedvision_reformat_parser_paths_and_timeout(figure_records, tmp_path, fast_backend):
    replies = {
        "fig0": GOOD_JSON,
        "fig1": "```json\n" + GOOD_JSON.replace('"A lesion."}', '"A lesion.",}') + "\n```",
        "fig2": "Sorry, I cannot analyse this image.",
        "fig3": '{"Image_description": "x", "QA-answer": "y"}',
        "fig4": GOOD_JSON,
    }

    def responder(body):
        text = _last_text(body)
        key = next(k for k, caption in zip(replies, ["hepatic", "radiograph", "MRI", "lymph", "kidney"]) if caption in text)
        return replies[key]

    with start_openai_server(responder) as server:
        server.enqueue(Reply.slow(GOOD_JSON, delay=1.5))  # first attempt times out, the retry succeeds
        report = run_method("pubmedvision", _args(figure_records, tmp_path / "out"),
                            fast_backend(server.url, timeout=0.5), concurrency=1, progress=False)
        bodies = [r.body for r in server.chat_requests()]
    assert report["requests"]["done"] == 5 and report["requests"]["failed"] == 0
    assert len(bodies) == 6  # the timed-out attempt was retried
    assert bodies[-1]["response_format"] == {"type": "json_object"}
    content = bodies[-1]["messages"][0]["content"]
    assert [p["type"] for p in content] == ["image_url", "image_url", "text"]  # fig4 has two images
    assert "<reference>\nGross specimen" in content[-1]["text"]
    assert report["parsing"]["rejected"] == {"no_json_object": 1, "missing_QA-query": 1}
    assert report["parsing"]["repaired_json"] == 1
    alignment = _read(tmp_path / "out" / "data" / "alignment.jsonl")
    instruct = _read(tmp_path / "out" / "data" / "instruct.jsonl")
    assert [r["id"] for r in alignment] == ["fig0-alignment", "fig1-alignment", "fig4-alignment"]
    from hf_medvlm.generation.prompts import load_prompt_file

    prompt = load_prompt_file("pubmedvision_reformat")
    multi = alignment[2]
    assert multi["messages"][0]["content"][:2] == [{"type": "image"}, {"type": "image"}] and len(multi["images"]) == 2
    assert multi["messages"][0]["content"][2]["text"] in prompt["multi_image_questions"]
    assert alignment[0]["messages"][0]["content"][1]["text"] in prompt["single_image_questions"]
    assert alignment[0]["messages"][1]["content"][0]["text"] == "A detailed view."
    assert instruct[0]["messages"][0]["content"][1]["text"] == "What is shown?"
    assert instruct[0]["scenario"] in {s["name"] for s in prompt["scenarios"]}


def _demos(tmp_path):
    path = tmp_path / "demos.jsonl"
    demos = [{"context": f"Figure Caption:\nFigure 1: demo {m} {i}", "response": f"User: q {m} {i}\nAssistant: a",
              "modality": m} for m in ("ct_scan", "mri", "chest_xray") for i in range(3)]
    path.write_text("".join(json.dumps(d) + "\n" for d in demos))
    return path


def test_biomed_vital_generation_then_rating(figure_records, tmp_path, fast_backend):
    conversation = "User: What modality?\nAssistant: CT.\nUser: Any lesion?\nAssistant: Yes, in the liver."
    with start_openai_server(lambda body: conversation) as server:
        args = _args(figure_records, tmp_path / "gen", demonstrations=str(_demos(tmp_path)), demos_per_modality=2)
        report = run_method("biomed-vital", args, fast_backend(server.url), progress=False)
        body = server.chat_requests()[0].body
    messages = body["messages"]
    assert messages[0]["role"] == "system" and "4-5 rounds" in messages[0]["content"]
    assert len(messages) == 1 + 2 * 6 + 1  # 2 demos x 3 modalities, as user/assistant pairs
    assert [p["type"] for p in messages[-1]["content"]] == ["image_url", "text"]
    assert report["parsing"]["rows_out"] == 5
    conversations = tmp_path / "gen" / "data" / "conversations.jsonl"

    ratings = {"Any lesion": "7 9\nThe first question is generic.", "default": "Scores: 7 9"}

    def rate(body):
        text = "\n".join(message_texts(body["messages"]))
        return ratings["Any lesion"] if "Gross specimen" not in text else ratings["default"]

    with start_openai_server(rate) as server:
        args = GenerateArguments(input=str(conversations), output_dir=str(tmp_path / "rate"))
        report = run_method("rate", args, fast_backend(server.url), progress=False)
        body = server.chat_requests()[0].body
    assert "0 to 10" in body["messages"][0]["content"]
    assert "Question 2: Any lesion?\nAnswer 2: Yes, in the liver." in body["messages"][2]["content"]
    rows = _read(tmp_path / "rate" / "data" / "ratings.jsonl")
    assert len(rows) == 10
    by_id = {r["id"]: r for r in rows}
    assert by_id["fig0-qa0"]["rating"] == 7 and by_id["fig0-qa1"]["rating"] == 9
    assert by_id["fig4-qa0"]["rating"] is None and by_id["fig4-qa0"]["rating_raw"] == "Scores: 7 9"
    assert by_id["fig0-qa1"]["rating_model"] == report["backend"] and "loopback" in report["backend"]
    assert report["parsing"]["unparsed_replies"] == {"no_score_line": 1}


@pytest.fixture(scope="module")
def tiny():
    from hf_medvlm.testing import build_tiny_llava_med

    return build_tiny_llava_med()


def test_pubmedvision_with_tiny_model_served_over_http(figure_records, tmp_path, fast_backend, tiny):
    """fig0 is answered with valid JSON, fig1 by real generation of the tiny model over HTTP."""
    model, processor = tiny
    tiny_model = TransformersResponder(model, processor, max_new_tokens=8)
    served = {}

    def responder(body):
        if "hepatic" in _last_text(body):
            return GOOD_JSON
        served["fig1"] = reply = tiny_model(body)
        return reply

    with start_openai_server(responder) as server:
        args = _args(figure_records, tmp_path / "out", max_new_tokens=8, limit=2)
        report = run_method("pubmedvision", args, fast_backend(server.url, timeout=60), progress=False)
    responses = {r["id"]: r for r in _read(tmp_path / "out" / "responses.jsonl")}
    assert report["requests"]["done"] == 2 and sorted(responses) == ["fig0", "fig1"]
    # The tiny model's greedy reply reached the pipeline unchanged; a random model writes no valid reply, so fig1 is
    # rejected and counted under the parser's reason for that text (which reason depends on the random tokens).
    assert responses["fig1"]["text"] == served["fig1"].text and 0 < responses["fig1"]["completion_tokens"] <= 8
    reason = parse_reformat_json(served["fig1"].text).reason
    assert reason and report["parsing"]["rejected"] == {reason: 1}
    assert report["parsing"]["alignment_rows"] == report["parsing"]["instruct_rows"] == 1
    alignment = _read(tmp_path / "out" / "data" / "alignment.jsonl")
    instruct = _read(tmp_path / "out" / "data" / "instruct.jsonl")
    assert [r["id"] for r in alignment] == ["fig0-alignment"] and [r["id"] for r in instruct] == ["fig0-instruct"]
    assert alignment[0]["messages"][1]["content"] == [{"type": "text", "text": "A detailed view."}]
    assert instruct[0]["messages"][0]["content"][1] == {"type": "text", "text": "What is shown?"}
    assert instruct[0]["messages"][1]["content"] == [{"type": "text", "text": "A lesion."}]


def test_local_backend_runs_every_method_on_the_tiny_model(figure_records, tmp_path, tiny):
    from hf_medvlm.llm.local import LocalChatBackend

    model, processor = tiny
    backend = LocalChatBackend(model, processor, max_new_tokens=6)
    for method in ("llava-med", "pubmedvision"):
        report = run_method(method, _args(figure_records, tmp_path / method, max_new_tokens=6, limit=2), backend,
                            concurrency=2, progress=False)
        responses = _read(tmp_path / method / "responses.jsonl")
        assert report["requests"]["done"] == 2 and len(responses) == 2
        assert all(0 < r["completion_tokens"] <= 6 and r["prompt_tokens"] > 0 for r in responses)
    # Same request twice gives the same greedy text (deterministic local generation).
    from hf_medvlm.llm import ChatRequest

    request = ChatRequest(messages=[{"role": "user", "content": "Describe a chest X-ray."}], max_tokens=5)
    assert backend.complete(request).text == backend.complete(request).text


@pytest.mark.integration
def test_kill_and_resume_sends_no_request_twice(figure_records, tmp_path):
    """SIGKILL a CLI run mid-way; the rerun only asks for ids without a stored reply."""
    with start_openai_server(lambda body: Reply.slow(GOOD_JSON, delay=0.4)) as server:
        out = tmp_path / "out"
        cmd = [sys.executable, "-m", "hf_medvlm", "generate", "pubmedvision", "--input", str(figure_records),
               "--output_dir", str(out), "--llm_base_url", server.url, "--llm_model", "loopback",
               "--llm_concurrency", "1"]
        env = {**os.environ, "OPENAI_API_KEY": "test"}
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        responses = out / "responses.jsonl"
        deadline = time.time() + 60
        while time.time() < deadline and (not responses.exists() or len(_read(responses)) < 2):
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        answered_before = {r["id"] for r in _read(responses)}
        sent_before = len(server.chat_requests())
        assert 2 <= len(answered_before) < 5
        assert sent_before <= len(answered_before) + 1  # at most the one request in flight at the kill

        rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        second_run = server.chat_requests()[sent_before:]
    asked_again = {
        fid for body in (r.body for r in second_run) for fid, word in
        zip(["fig0", "fig1", "fig2", "fig3", "fig4"], ["hepatic", "radiograph", "MRI", "lymph", "kidney"])
        if word in message_texts(body["messages"])[-1]
    }
    assert not asked_again & answered_before
    assert len(second_run) == 5 - len(answered_before)
    assert {r["id"] for r in _read(responses)} == {f"fig{i}" for i in range(5)}
    assert json.loads(rerun.stdout)["requests"]["skipped"] == len(answered_before)


def test_demonstration_selection_is_uniform_across_clusters():
    import numpy as np

    from hf_medvlm.generation.biomed_vital import select_demonstration_candidates

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 8)) * 20
    sizes = [50, 10, 5, 35]  # unbalanced groups: plain random sampling would mostly draw the big ones
    features = np.concatenate([c + rng.normal(size=(n, 8)) for c, n in zip(centers, sizes)]).astype(np.float32)
    complexity = list(range(len(features)))
    picked, labels = select_demonstration_candidates(features, 4, 12, complexity=complexity, seed=0)
    per_cluster = np.bincount(labels[picked], minlength=4)
    assert per_cluster.tolist() == [3, 3, 3, 3]
    for k in range(4):  # the most complex samples of each cluster come first
        members = [i for i in picked if labels[i] == k]
        assert members == sorted(np.nonzero(labels == k)[0].tolist(), reverse=True)[:3]


def test_text_only_local_backend_refuses_images(tiny):
    from hf_medvlm.llm import ChatRequest
    from hf_medvlm.llm.local import LocalChatBackend

    model, processor = tiny
    backend = LocalChatBackend(model.model.language_model if hasattr(model.model, "language_model") else model,
                               processor.tokenizer)
    assert not backend.is_multimodal
    url = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
    request = ChatRequest(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "What is this?"}]}])
    with pytest.raises(ValueError, match="text-only model but the request holds 1 image"):
        backend.complete(request)


def _image_from_request(body):
    import base64
    import io

    from PIL import Image

    url = next(part["image_url"]["url"] for m in body["messages"] if isinstance(m["content"], list)
               for part in m["content"] if part["type"] == "image_url")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


@pytest.mark.integration
def test_image_labels_train_the_medical_image_classifier_end_to_end(tmp_path, fast_backend):
    """PubMedVision Appendix B: MLLM labels (here: the loopback server playing the MLLM) -> classifier training set
    -> `filter train-classifier` -> a classifier that loads and tells scans from charts."""
    import numpy as np
    import torch
    from transformers import AutoImageProcessor, CLIPVisionConfig, CLIPVisionModel
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    from hf_medvlm.generation.image_classifier import MedicalImageClassifier
    from hf_medvlm.generation.pubmedvision_filter import TrainClassifierArguments, train_classifier

    from .test_filtering import _chart, _scan

    (tmp_path / "img").mkdir()
    lines = []
    for i in range(16):
        for kind, draw in (("scan", _scan), ("chart", _chart)):
            draw(i).save(tmp_path / "img" / f"{kind}{i}.png")
            lines.append({"id": f"{kind}{i}", "images": [f"img/{kind}{i}.png"], "caption": "A figure."})
    (tmp_path / "figures.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))

    def mllm(body):  # a stand-in MLLM: charts are mostly white, scans mostly dark
        return "non-medical" if np.asarray(_image_from_request(body).convert("L")).mean() > 128 else "Medical."

    with start_openai_server(mllm) as server:
        server.enqueue(Reply("I cannot tell from this image."))
        args = GenerateArguments(input=str(tmp_path / "figures.jsonl"), output_dir=str(tmp_path / "labels"),
                                 max_new_tokens=16)
        report = run_method("image-labels", args, fast_backend(server.url), concurrency=1, progress=False)
        first = server.chat_requests()[0].body
    assert first["messages"][0]["role"] == "system" and "chart" in first["messages"][0]["content"]
    assert [p["type"] for p in first["messages"][1]["content"]] == ["image_url", "text"]
    assert report["parsing"]["images_in"] == 32 and report["parsing"]["labelled"] == 31
    assert report["parsing"]["counts"]["no_label_line"] == 1
    assert report["parsing"]["counts"]["medical"] + report["parsing"]["counts"]["non_medical"] == 31
    labels = _read(tmp_path / "labels" / "data" / "labels.jsonl")
    assert all(row["label"] == int(row["id"].startswith("scan")) for row in labels)
    assert labels[0]["image"].startswith("../../img/") and labels[0]["label_model"] == "loopback"
    card = (tmp_path / "labels" / "data" / "README.md").read_text()
    assert "`loopback`" in card and "gpt-4-turbo-2024-04-09" in card and "labels.jsonl" in card

    encoder = tmp_path / "clip"
    torch.manual_seed(0)
    CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                     image_size=32, patch_size=8)).save_pretrained(encoder)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(encoder)
    summary = train_classifier(TrainClassifierArguments(labels=str(tmp_path / "labels" / "data" / "labels.jsonl"),
                                                        vision_encoder=str(encoder), output_dir=str(tmp_path / "clf")))
    assert summary["images"] == 31
    model = MedicalImageClassifier.from_pretrained(tmp_path / "clf").eval()
    processor = AutoImageProcessor.from_pretrained(tmp_path / "clf")
    held_out = [_scan(100 + i) for i in range(10)] + [_chart(100 + i) for i in range(10)]
    probs = model.predict_proba(processor(images=held_out, return_tensors="pt")["pixel_values"])
    accuracy = ((probs >= model.config.threshold).long() == torch.tensor([1] * 10 + [0] * 10)).float().mean()
    assert accuracy >= 0.9, probs


def test_biomed_vital_candidates_two_answers_per_question(figure_records, tmp_path, fast_backend):
    reply = ("Here are the rounds.\nUser: What modality?\nAnswer 1: A CT scan.\nAnswer 2: Computed tomography of "
             "the abdomen.\nUser: Any lesion?\nAnswer 1: Yes.\nUser: Which organ?\nAnswer 1: Liver.\nAnswer 2: The "
             "liver, right lobe.\nAnswer 3: Spleen.")
    with start_openai_server(lambda body: reply) as server:
        report = run_method("biomed-vital-candidates", _args(figure_records, tmp_path / "cand"),
                            fast_backend(server.url), progress=False)
        body = server.chat_requests()[0].body
    assert "two separate answers" in body["messages"][0]["content"]
    assert [p["type"] for p in body["messages"][1]["content"]] == ["image_url", "text"]
    assert body["max_tokens"] == 4096  # BioMed-VITAL's generator limit, the CLI default
    rows = _read(tmp_path / "cand" / "data" / "candidates.jsonl")
    assert len(rows) == 5 and rows[0]["question"] == "What modality?"
    assert (rows[0]["answer_1"], rows[0]["answer_2"]) == ("A CT scan.", "Computed tomography of the abdomen.")
    assert rows[0]["context"].startswith("Figure Caption:") and rows[0]["generator"] == "loopback"
    assert report["parsing"]["dropped_rounds"] == {"preamble": 5, "one_answer": 5, "too_many_answers": 5}
    assert "gpt-4-vision-preview" in (tmp_path / "cand" / "data" / "README.md").read_text()
