"""Dataset format, loader checks and converters, on tiny hand-written sources (and the dev data if present)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from eval.converters import FORMATS, convert
from eval.datasets import (
    CorpusRecord,
    Dataset,
    DatasetError,
    QuestionRecord,
    load_dataset,
    save_dataset,
)
from conftest import dev_data

# ------------------------------------------------------------------------------ hand-written sources


def write(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj), "utf-8")
    return path


def squad_source(tmp_path: Path, *, v2: bool = False, articles: int = 2, paragraphs: int = 3) -> Path:
    """Article k, paragraph i holds one sentence naming colour ck_i; one question per paragraph."""
    data = []
    for k in range(articles):
        paras = []
        for i in range(paragraphs):
            colour = f"c{k}_{i}"
            qas = [{"id": f"q{k}_{i}", "question": f"Which colour is kite {k}-{i}?",
                    "answers": [{"text": colour, "answer_start": 14}] * 2}]
            if v2:
                qas[0]["is_impossible"] = False
                qas.append({"id": f"x{k}_{i}", "question": f"Which colour is boat {k}-{i}?", "answers": [],
                            "is_impossible": True})
            paras.append({"context": f"The kite is a {colour} kite.", "qas": qas})
        data.append({"title": f"Kites_{k}", "paragraphs": paras})
    return write(tmp_path / "squad.json", {"version": "v2.0" if v2 else "1.1", "data": data})


def hotpot_source(tmp_path: Path, *, with_corpus: bool = True) -> Path:
    paragraphs = {
        "Ada Lake": ["Ada Lake is in Norland.", " It is deep."],
        "Norland": ["Norland is a country.", " Its capital is Brim."],
        "Brim": ["Brim is a city."],
        "Oak Hill": ["Oak Hill is a hill.", " It is in Sudland."],
    }
    items = [
        {"_id": "h1", "question": "What is the capital of the country Ada Lake is in?", "answer": "Brim",
         "type": "bridge", "level": "easy", "supporting_facts": [["Ada Lake", 0], ["Norland", 1]],
         "context": [[t, paragraphs[t]] for t in ("Ada Lake", "Norland", "Brim")]},
        {"_id": "h2", "question": "Is Oak Hill in Norland?", "answer": "no", "type": "comparison", "level": "hard",
         "supporting_facts": [["Oak Hill", 1]], "context": [[t, paragraphs[t]] for t in ("Oak Hill", "Brim")]},
    ]
    if with_corpus:
        write(tmp_path / "hotpotqa_dev_corpus.json", paragraphs)
    return write(tmp_path / "hotpotqa_dev.json", items)


def musique_source(tmp_path: Path) -> Path:
    corpus = [{"title": "Vela", "text": "Vela wrote the song Rain."}, {"title": "Vela", "text": "Vela is a star."},
              {"title": "Rain", "text": "Rain was released in 1990."}, {"title": "Moss", "text": "Moss is green."}]
    paragraphs = [{"idx": i, "title": d["title"], "paragraph_text": d["text"], "is_supporting": i in (0, 2)}
                  for i, d in enumerate(corpus)]
    items = [{"id": "2hop__1_2", "question": "When was the song by Vela released?", "answer": "1990",
              "answer_aliases": ["nineteen ninety"], "answerable": True, "paragraphs": paragraphs,
              "question_decomposition": [
                  {"id": 1, "question": "What did Vela write?", "answer": "Rain", "paragraph_support_idx": 0},
                  {"id": 2, "question": "When was #1 released?", "answer": "1990", "paragraph_support_idx": 2}]}]
    write(tmp_path / "musique_dev_corpus.json", corpus)
    return write(tmp_path / "musique_dev.json", items)


def rgb_source(tmp_path: Path) -> Path:
    rows = [
        {"id": 0, "query": "Where was the 2030 Moon Cup held?", "answer": "Tycho", "fakeanswer": "Clavius",
         "positive": ["The Moon Cup 2030 was held in Tycho.", "The Moon Cup 2030 was held in Tycho."],
         "positive_wrong": ["The Moon Cup 2030 was held in Clavius."], "negative": ["Moon dust is grey."]},
        {"id": 1, "query": "When did the Mars bridge open?", "fakeanswer": "May 2 2031",
         "answer": [["June 1 2031", "1 June 2031"]], "positive": ["The Mars bridge opened on June 1 2031."],
         "positive_wrong": ["The Mars bridge opened on May 2 2031."], "negative": []},
    ]
    path = tmp_path / "rgb.json"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", "utf-8")
    return path


def locomo_source(tmp_path: Path) -> Path:
    conversation = {
        "speaker_a": "Ana", "speaker_b": "Ben",
        "session_1_date_time": "1:00 pm on 1 May, 2030",
        "session_1": [{"speaker": "Ana", "dia_id": "D1:1", "text": "I adopted a cat."},
                      {"speaker": "Ben", "dia_id": "D1:2", "text": "Nice! Mine is a dog.", "blip_caption": "a dog"}],
        "session_2_date_time": "2:00 pm on 9 May, 2030",
        "session_2": [{"speaker": "Ana", "dia_id": "D2:1", "text": "The cat is named Pip."}],
    }
    qa = [
        {"question": "What pet did Ana adopt?", "answer": "a cat", "evidence": ["D1:1"], "category": 4},
        {"question": "When did Ana name her cat?", "answer": 2030, "evidence": ["D2:1"], "category": 2},
        {"question": "Would Ana like a dog?", "answer": "Maybe; she has a cat", "evidence": ["D1:1; D1:2", "D"],
         "category": 3},
        {"question": "What is Ben's cat called?", "adversarial_answer": "Pip", "evidence": ["D2:01"], "category": 5},
    ]
    return write(tmp_path / "locomo.json", [{"sample_id": "conv-1", "conversation": conversation, "qa": qa}])


def amnesty_source(tmp_path: Path) -> Path:
    rows = [{"input": f"Question {i}?", "relevant_chunks": [f"Chunk {i}.{j}." for j in range(3)],
             "output": f"Given {i}", "ground_truth": f"Truth {i}"} for i in range(4)]
    return write(tmp_path / "amnesty.json", rows)


def check_integrity(ds: Dataset) -> None:
    """Ids unique, every evidence id in the corpus, every evidence text inside an evidence document."""
    docs = {d.id: d for d in ds.corpus}
    assert len(docs) == len(ds.corpus)
    assert len({q.id for q in ds.questions}) == len(ds.questions)
    for q in ds.questions:
        assert all(e in docs for e in q.evidence_ids), q.id
        for text in q.metadata.get("evidence_texts", []):
            assert any(text in docs[e].text for e in q.evidence_ids), (q.id, text)
    assert ds.manifest["questions"] == len(ds.questions) and ds.manifest["documents"] == len(ds.corpus)


# -------------------------------------------------------------------------------------------- converters


def test_registry_names_every_format() -> None:
    assert {"squad", "squad-v2", "hotpotqa", "musique", "rgb", "locomo", "amnesty-qa"} <= set(FORMATS)


def test_squad_ids_answers_and_evidence(tmp_path: Path) -> None:
    ds = convert("squad", squad_source(tmp_path))
    assert [d.id for d in ds.corpus[:2]] == ["Kites_0#0", "Kites_0#1"]
    assert ds.corpus[0].title == "Kites 0" and len(ds.corpus) == 6
    q = ds.questions[4]
    assert (q.id, q.answers, q.evidence_ids) == ("q1_1", ("c1_1",), ("Kites_1#1",))
    assert q.metadata["evidence_texts"] == ["c1_1"] and q.answerable
    check_integrity(ds)


def test_squad_v2_unanswerable_means_abstain(tmp_path: Path) -> None:
    ds = convert("squad-v2", squad_source(tmp_path, v2=True))
    impossible = next(q for q in ds.questions if q.id == "x0_2")
    assert impossible.answers == () and not impossible.answerable
    assert impossible.metadata["is_impossible"] is True and impossible.evidence_ids == ("Kites_0#2",)
    assert sum(q.answerable for q in ds.questions) == 6
    check_integrity(ds)


@pytest.mark.parametrize("with_corpus", [True, False])
def test_hotpotqa_titles_and_supporting_sentences(tmp_path: Path, with_corpus: bool) -> None:
    ds = convert("hotpotqa", hotpot_source(tmp_path, with_corpus=with_corpus))
    # Without the corpus file only context paragraphs exist; the corpus holds all four either way here.
    assert {d.id for d in ds.corpus} == {"Ada Lake", "Norland", "Brim", "Oak Hill"}
    assert next(d for d in ds.corpus if d.id == "Ada Lake").text == "Ada Lake is in Norland. It is deep."
    h1 = ds.questions[0]
    assert h1.evidence_ids == ("Ada Lake", "Norland") and h1.answers == ("Brim",)
    assert h1.metadata["evidence_texts"] == ["Ada Lake is in Norland.", "Its capital is Brim."]
    assert (h1.metadata["type"], h1.metadata["level"]) == ("bridge", "easy")
    check_integrity(ds)


def test_hotpotqa_with_limit_keeps_own_context(tmp_path: Path) -> None:
    source = hotpot_source(tmp_path)
    ds = convert("hotpotqa", source, limit=1, seed=0)
    contexts = {"h1": {"Ada Lake", "Norland", "Brim"}, "h2": {"Oak Hill", "Brim"}}
    assert {d.id for d in ds.corpus} == contexts[ds.questions[0].id]


def test_hotpotqa_refuses_the_corpus_file(tmp_path: Path) -> None:
    hotpot_source(tmp_path)
    with pytest.raises(DatasetError, match="corpus file"):
        convert("hotpotqa", tmp_path / "hotpotqa_dev_corpus.json")
    assert len(convert("hotpotqa", tmp_path).questions) == 2  # a folder with one question file works


def test_musique_numbers_repeated_titles(tmp_path: Path) -> None:
    ds = convert("musique", musique_source(tmp_path))
    assert [d.id for d in ds.corpus] == ["Vela#0", "Vela#1", "Rain#0", "Moss#0"]
    q = ds.questions[0]
    assert q.evidence_ids == ("Vela#0", "Rain#0") and q.answers == ("1990", "nineteen ninety")
    assert q.metadata["type"] == "2hop"
    assert q.metadata["evidence_texts"] == ["Vela wrote the song Rain.", "Rain was released in 1990."]
    assert [s["evidence_id"] for s in q.metadata["decomposition"]] == ["Vela#0", "Rain#0"]
    check_integrity(ds)


def test_rgb_pools_passages_by_role(tmp_path: Path) -> None:
    ds = convert("rgb", rgb_source(tmp_path))
    # The repeated positive passage becomes one document.
    assert [d.id for d in ds.corpus[:3]] == ["rgb:0:pos:0", "rgb:0:wrong:0", "rgb:0:neg:0"]
    first, second = ds.questions
    assert first.evidence_ids == ("rgb:0:pos:0",) and first.metadata["fakeanswer"] == "Clavius"
    assert second.answers == ("June 1 2031", "1 June 2031") and second.evidence_ids == ("rgb:1:pos:0",)
    assert ds.corpus[1].metadata["role"] == "wrong"
    check_integrity(ds)


def test_locomo_turns_categories_and_bad_evidence(tmp_path: Path) -> None:
    ds = convert("locomo", locomo_source(tmp_path))
    assert [d.id for d in ds.corpus] == ["conv-1:D1:1", "conv-1:D1:2", "conv-1:D2:1"]
    assert ds.corpus[1].text == "Ben: Nice! Mine is a dog. [shares a photo: a dog]"
    assert ds.corpus[2].metadata == {"conversation_id": "conv-1", "session": 2, "date": "2:00 pm on 9 May, 2030",
                                     "speaker": "Ana", "dia_id": "D2:1"}
    pet, when, like, adversarial = ds.questions
    assert pet.id == "conv-1:q0" and pet.conversation_id == "conv-1"
    assert pet.metadata["evidence_texts"] == ["Ana: I adopted a cat."] and pet.metadata["type"] == "open-domain"
    assert when.answers == ("2030",)
    assert like.answers == ("Maybe; she has a cat", "Maybe")
    assert like.evidence_ids == ("conv-1:D1:1", "conv-1:D1:2")  # "D1:1; D1:2" split, "D" dropped
    assert not adversarial.answerable and adversarial.metadata["adversarial_answer"] == "Pip"
    assert adversarial.evidence_ids == ("conv-1:D2:1",)  # "D2:01" normalised
    assert "3 malformed evidence ids" in ds.manifest["warnings"][0] and "1 dropped" in ds.manifest["warnings"][0]
    check_integrity(ds)


def test_amnesty_qa_chunks_and_reference(tmp_path: Path) -> None:
    ds = convert("amnesty-qa", amnesty_source(tmp_path), limit=1, seed=3)
    assert len(ds.corpus) == 12  # every chunk of the tiny file stays as distractor
    q = ds.questions[0]
    row = int(q.id.split(":")[1])
    assert q.answers == (f"Truth {row}",) and q.metadata["given_answer"] == f"Given {row}"
    assert q.evidence_ids == tuple(f"amnesty:{row}:{j}" for j in range(3))
    check_integrity(ds)


# ---------------------------------------------------------------------------------------------- sampling


def test_same_seed_same_bytes_and_different_seed_different_questions(tmp_path: Path) -> None:
    source = squad_source(tmp_path, articles=12, paragraphs=4)
    outputs = []
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        save_dataset(convert("squad", source, limit=5, seed=seed), tmp_path / name)
        outputs.append([(tmp_path / name / f).read_bytes() for f in ("corpus.jsonl", "questions.jsonl", "dataset.json")])
    assert outputs[0] == outputs[1]
    ids = [{q.id for q in load_dataset(tmp_path / n).questions} for n in ("a", "c")]
    assert ids[0] != ids[1]


def test_squad_default_keeps_articles_then_tops_up(tmp_path: Path) -> None:
    source = squad_source(tmp_path, articles=12, paragraphs=4)
    ds = convert("squad", source, limit=3, seed=1)
    articles = {q.metadata["article"] for q in ds.questions}
    article_docs = {d.id for d in ds.corpus if d.metadata["article"] in articles}
    assert len(article_docs) == 4 * len(articles)  # whole articles of the sampled questions
    assert len(ds.corpus) == max(30, 4 * len(articles))  # ~10 documents per question
    assert ds.manifest["distractors"] == len(ds.corpus) - 3
    check_integrity(ds)


@pytest.mark.parametrize("seed", range(5))
def test_evidence_always_in_corpus_and_distractors_count(tmp_path: Path, seed: int) -> None:
    source = squad_source(tmp_path, articles=6, paragraphs=5)
    none = convert("squad", source, limit=4, seed=seed, distractors=0)
    assert {d.id for d in none.corpus} == {e for q in none.questions for e in q.evidence_ids}
    some = convert("squad", source, limit=4, seed=seed, distractors=3)
    assert len(some.corpus) == len(none.corpus) + 3 and some.questions == none.questions
    check_integrity(some)


def test_no_limit_keeps_everything_and_big_limit_keeps_all_questions(tmp_path: Path) -> None:
    source = squad_source(tmp_path)
    assert len(convert("squad", source).corpus) == 6
    assert len(convert("squad", source, limit=100).questions) == 6


def test_convert_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="unknown dataset format 'nope'.*squad"):
        convert("nope", tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        convert("squad", tmp_path / "missing.json")
    with pytest.raises(DatasetError, match="limit"):
        convert("squad", squad_source(tmp_path), limit=0)
    with pytest.raises(DatasetError, match="not a hotpotqa file"):
        convert("hotpotqa", squad_source(tmp_path))


# ----------------------------------------------------------------------------------------- save and load


def small_dataset() -> Dataset:
    corpus = [CorpusRecord("d1", "One", "Alpha is first.", {"k": 1}), CorpusRecord("d2", "", "Beta.")]
    questions = [QuestionRecord("q1", "What is first?", ("Alpha",), ("d1",), "c1", {"evidence_texts": ["Alpha"]}),
                 QuestionRecord("q2", "Who is last?", (), ())]
    return Dataset("tiny", corpus, questions, {"format": "hand", "seed": 0})


def test_save_load_round_trip(tmp_path: Path) -> None:
    ds = small_dataset()
    save_dataset(ds, tmp_path / "set")
    back = load_dataset(tmp_path / "set")
    assert back.corpus == ds.corpus and back.questions == ds.questions and back.name == "tiny"
    assert back.manifest["questions"] == 2 and back.manifest["documents"] == 2
    assert not back.questions[1].answerable and back.questions[0].answerable


def test_convert_save_load_round_trip(tmp_path: Path) -> None:
    ds = convert("locomo", locomo_source(tmp_path))
    save_dataset(ds, tmp_path / "out")
    assert load_dataset(tmp_path / "out") == ds


def break_line(folder: Path, name: str, line: int, text: str) -> None:
    lines = (folder / name).read_text("utf-8").splitlines()
    lines[line - 1] = text
    (folder / name).write_text("\n".join(lines) + "\n", "utf-8")


@pytest.mark.parametrize(
    ("name", "line", "text", "message"),
    [
        ("questions.jsonl", 2, "{not json", r"questions.jsonl:2: invalid JSON"),
        ("corpus.jsonl", 1, "[1, 2]", r"corpus.jsonl:1: expected a JSON object"),
        ("questions.jsonl", 1, json.dumps({"id": "q1", "question": "?", "answers": [], "evidence_ids": ["zz"]}),
         r"questions.jsonl:1: evidence id\(s\) \['zz'\]"),
        ("questions.jsonl", 2, json.dumps({"id": "q2", "question": "?"}), r"questions.jsonl:2: missing field"),
        ("corpus.jsonl", 2, json.dumps({"id": "d1", "text": "again"}), r"corpus.jsonl:2: id 'd1' repeats"),
        ("questions.jsonl", 2, json.dumps({"id": "q2", "question": "?", "answers": "x"}), r"'answers' has type str"),
    ],
)
def test_load_errors_name_file_and_line(tmp_path: Path, name: str, line: int, text: str, message: str) -> None:
    save_dataset(small_dataset(), tmp_path)
    break_line(tmp_path, name, line, text)
    with pytest.raises(DatasetError, match=message):
        load_dataset(tmp_path)


def test_load_missing_file_and_error_is_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="corpus.jsonl is missing"):
        load_dataset(tmp_path)


# ------------------------------------------------------------------------------------------- the dev data

DEV_FILES = [
    ("squad", "squad/dev-v1.1.rebuilt.json", 20),
    ("squad-v2", "squad/dev-v2.0.rebuilt.json", 20),
    ("hotpotqa", "hotpotqa-musique/hotpotqa_train.json", 20),
    ("musique", "hotpotqa-musique/musique_train.json", 20),
    ("rgb", "rgb/en_fact.json", 20),
    ("locomo", "locomo/locomo10.json", 20),
    ("amnesty-qa", "amnesty-qa/amnesty_qa.json", 20),
]


@pytest.mark.parametrize(("fmt", "relative", "questions"), DEV_FILES)
def test_dev_file_converts(tmp_path: Path, fmt: str, relative: str, questions: int) -> None:
    ds = convert(fmt, dev_data(relative), limit=20, seed=0)
    assert len(ds.questions) == questions
    assert len(ds.corpus) >= len({e for q in ds.questions for e in q.evidence_ids}) > 0
    assert all(q.evidence_ids or fmt == "locomo" for q in ds.questions)
    check_integrity(ds)
    save_dataset(ds, tmp_path)
    assert load_dataset(tmp_path) == ds
    if fmt == "locomo":
        assert "9 malformed evidence ids" in ds.manifest["warnings"][0]


def test_dev_squad_v2_full_is_fast_and_half_unanswerable() -> None:
    began = time.perf_counter()
    ds = convert("squad-v2", dev_data("squad/dev-v2.0.rebuilt.json"))
    assert time.perf_counter() - began < 10
    assert (len(ds.questions), len(ds.corpus)) == (11873, 1204)
    assert sum(not q.answerable for q in ds.questions) == 5945
