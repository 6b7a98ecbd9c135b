"""Context ordering: attention extraction on a tiny random transformer, sorting, fallbacks, adaptive k."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch

from assistant.models.attention import full_attention_layers, span_attention
from assistant.models.base import Message
from assistant.models.fake import FakeGenerator
from assistant.ordering import ContextOrderer
from assistant.prompts import build_messages, source_blocks
from assistant.selection import adaptive_k
from assistant.types import Hit, Trace


def hit(n: int, text: str) -> Hit:
    return Hit(f"u{n}", text, 1.0 / (n + 1), f"/docs/{n}.md", f"u{n}", f"d{n}", title=f"doc {n}")


HITS = [hit(0, "Lake Baikal is deep."), hit(1, "The Eiffel Tower is tall."), hit(2, "The Nile is long.")]


@pytest.fixture(scope="module")
def tiny_model():
    """A randomly initialised Gemma 3 with two sliding-window layers and one full-attention layer, and a
    character-level tokenizer built in memory: nothing is downloaded."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import Gemma3TextConfig, Gemma3ForCausalLM, PreTrainedTokenizerFast

    alphabet = sorted(set("".join(chr(c) for c in range(32, 127)) + "\n"))
    vocab = {"<unk>": 0, "<bos>": 1} | {ch: i + 2 for i, ch in enumerate(alphabet)}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>", bos_token="<bos>")
    torch.manual_seed(0)
    config = Gemma3TextConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        sliding_window=8,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
        max_position_embeddings=4096,
    )
    model = Gemma3ForCausalLM(config).eval()
    return model, tokenizer


def test_full_attention_layers_are_the_gemma_global_ones(tiny_model) -> None:
    model, _ = tiny_model
    assert full_attention_layers(model.config) == [2]


def test_span_attention_returns_one_score_per_source_from_the_last_position(tiny_model) -> None:
    model, tokenizer = tiny_model
    blocks = source_blocks(HITS)
    prompt = "Sources:\n" + "\n".join(blocks) + "\nQuestion: which is deep?\nAnswer:"
    spans = []
    for block in blocks:
        start = prompt.index(block)
        spans.append((start, start + len(block)))
    scores = span_attention(model, tokenizer, prompt, spans)
    assert len(scores) == len(HITS) and all(s > 0 for s in scores)
    # The same number by hand: eager attention of the full-attention layer, last row, mean over heads.
    model.set_attn_implementation("eager")
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        attention = model(**ids, output_attentions=True).attentions[2][0, :, -1, :].mean(dim=0)
    for (start, end), score in zip(spans, scores):
        assert score == pytest.approx(float(attention[start:end].sum()), rel=1e-4)  # one token per character
    assert sum(scores) < 1.0  # the question and labels take the rest


class ScriptedScorer(FakeGenerator):
    """Reports fixed attention per source text, whatever the order, and records each call."""

    def __init__(self, attention: dict[str, float]) -> None:
        super().__init__()
        self.attention = attention
        self.seen: list[list[str]] = []

    def source_attention(self, messages: Sequence[Message], sources: Sequence[str]) -> list[float]:
        self.seen.append(list(sources))
        return [next(v for k, v in self.attention.items() if k in block) for block in sources]


def prompt_for(ordered: Sequence[Hit]) -> tuple[list[Message], list[str]]:
    return build_messages("which is deep?", ordered), source_blocks(ordered)


def test_attention_sorting_puts_the_most_attended_source_last() -> None:
    scorer = ScriptedScorer({"Baikal": 0.5, "Eiffel": 0.1, "Nile": 0.3})
    trace = Trace()
    ordered = ContextOrderer("attention", rounds=2).arrange(HITS, scorer, prompt_for, trace)
    assert [h.unit_id for h in ordered] == ["u1", "u2", "u0"]
    info = trace.stages[-1].details
    assert info["ran"] == "attention" and len(info["rounds"]) == 2
    assert info["rounds"][0] == {"u0": 0.5, "u1": 0.1, "u2": 0.3}
    assert "Eiffel" in scorer.seen[1][0]  # the second round measured the re-sorted prompt


def test_attention_sorting_on_the_tiny_model_sorts_by_its_scores(tiny_model) -> None:
    model, tokenizer = tiny_model

    class Tiny(FakeGenerator):
        def source_attention(self, messages, sources):
            prompt = "\n\n".join(m.content for m in messages)
            spans = [(prompt.index(s), prompt.index(s) + len(s)) for s in sources]
            return span_attention(model, tokenizer, prompt, spans)

    trace = Trace()
    ordered = ContextOrderer("attention").arrange(HITS, Tiny(), prompt_for, trace)
    scores = trace.stages[-1].details["rounds"][0]
    assert [h.unit_id for h in ordered] == sorted(scores, key=scores.get)


def test_generators_without_attention_get_best_last_and_the_trace_says_so() -> None:
    trace = Trace()
    ordered = ContextOrderer("attention").arrange(HITS, FakeGenerator(), prompt_for, trace)
    assert [h.unit_id for h in ordered] == ["u2", "u1", "u0"]
    info = trace.stages[-1].details
    assert info["ran"] == "score-last" and "cannot report attention" in info["why"]


def test_a_failing_attention_pass_falls_back_to_best_last_and_says_why() -> None:
    class Broken(FakeGenerator):
        def source_attention(self, messages, sources):
            raise KeyError("kq_soft_max-0")  # a llama.cpp build that names its tensors differently

    trace = Trace()
    ordered = ContextOrderer("attention").arrange(HITS, Broken(), prompt_for, trace)
    assert [h.unit_id for h in ordered] == ["u2", "u1", "u0"]
    info = trace.stages[-1].details
    assert info["ran"] == "score-last" and info["fallback"] == "attention sorting failed: KeyError: 'kq_soft_max-0'"


@pytest.mark.parametrize(("order", "expected"), [("retrieval", ["u0", "u1", "u2"]), ("reversed", ["u2", "u1", "u0"])])
def test_fixed_orders(order: str, expected: list[str]) -> None:
    trace = Trace()
    assert [h.unit_id for h in ContextOrderer(order).arrange(HITS, FakeGenerator(), prompt_for, trace)] == expected
    with pytest.raises(ValueError, match="unknown context order"):
        ContextOrderer("random")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("scores", "k"),
    [
        ([0.9, 0.5, 0.45, 0.4], 1),  # one clear winner
        ([0.8, 0.78, 0.3, 0.28], 2),  # two relevant, then a cliff
        ([0.5, 0.5, 0.5], 3),  # flat: no gap, keep all
        ([0.7, None, 0.2], 1),
        ([0.6], 1),
        ([], 0),
    ],
)
def test_adaptive_k_cuts_at_the_largest_gap(scores, k) -> None:
    assert adaptive_k(scores) == k


def test_adaptive_k_respects_bounds() -> None:
    assert adaptive_k([0.9, 0.5, 0.45, 0.4], min_k=2) == 2
    assert adaptive_k([0.8, 0.78, 0.76, 0.1], max_k=2) == 2


def test_source_spans_are_found_in_order() -> None:
    from assistant.models.attention import source_spans

    prompt = "Sources:\n[1] a: same\n[2] b: same\nQuestion: q"
    assert source_spans(prompt, ["[1] a: same", "[2] b: same"]) == [(9, 20), (21, 32)]
    with pytest.raises(ValueError, match="not found"):
        source_spans(prompt, ["[2] b: same", "[1] a: same"])  # out of order: the second is not after the first


def test_attention_recording_is_per_call_across_threads(tiny_model) -> None:
    import threading

    from assistant.models.attention import last_row_attention

    model, tokenizer = tiny_model
    prompts = [tokenizer(text, return_tensors="pt")["input_ids"] for text in ("Lake Baikal is deep.", "The Nile is a long river in Africa.")]
    alone = [last_row_attention(model, ids, [2]) for ids in prompts]
    results: dict[int, object] = {}

    def record(i: int) -> None:
        for _ in range(5):
            results[i] = last_row_attention(model, prompts[i], [2])

    threads = [threading.Thread(target=record, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(torch.equal(results[i], alone[i]) for i in (0, 1))  # nobody read the other's rows
    assert model.config._attn_implementation != "tessera_last_row"  # switched back
