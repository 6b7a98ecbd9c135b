"""The machine's floors: how close embedding and generation come to what this CPU can do at best.

- **Compute**: the CPU's measured matrix-multiply rate (torch GEMM, fp32 and bf16, all torch threads)
  against the embedder's FLOPs per text: the best embeddings/s the model's arithmetic allows.
- **Memory bandwidth**: decoding one token reads every weight once (the tied embedding matrix too, as the
  output layer), so tokens/s can be no higher than bandwidth / weight bytes. Bandwidth is measured by
  reading a buffer far larger than the caches, the way decoding streams weights.

Run: ``python -m eval.bench.floors`` (about two minutes).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch


def _best_seconds(fn: Any, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


def matmul_gflops(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """Measured GEMM rate: ``2 n^3`` FLOPs per ``n x n`` matmul, best of ``repeats``."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    return 2 * n**3 / _best_seconds(lambda: a @ b, repeats) / 1e9


def read_bandwidth_gbs(mb: int = 1024, repeats: int = 5) -> float:
    """Measured read bandwidth: the fastest of two streaming reductions over ``mb`` MB (far beyond the caches).

    A float32 sum and a bf16 max both read every byte once; the faster one is nearer the memory's limit
    (a bf16 *sum* is not used: its float conversion makes it compute-bound here).
    """
    f32 = torch.ones(mb * 2**20 // 4, dtype=torch.float32)
    b16 = torch.ones(mb * 2**20 // 2, dtype=torch.bfloat16)
    rates = [mb * 2**20 / _best_seconds(fn, repeats) / 1e9 for fn in (f32.sum, b16.max)]
    return max(rates)


def encoder_flops(config: Any, tokens: int) -> float:
    """FLOPs of one BERT-style encoder pass over ``tokens`` tokens (2 per multiply-add).

    Per layer: Q, K, V and output projections (4 d^2 per token), the feed-forward block (2 d f per token)
    and attention scores and mixing (2 L d per token). Embedding lookups and norms are negligible.
    """
    d, f, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    per_token = 4 * d * d + 2 * d * f + 2 * tokens * d
    return 2.0 * layers * per_token * tokens


def embedding_floor(texts_tokens: int, batch: int, repeats: int) -> dict[str, float]:
    """The bundled MiniLM on batches of ``batch`` texts of ``texts_tokens`` tokens: measured vs compute bound."""
    from assistant.models.embedders import minilm

    embedder = minilm(batch_size=batch)
    model, _ = embedder._load()
    ids = torch.randint(1000, 20000, (batch, texts_tokens))
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        seconds = _best_seconds(lambda: model(input_ids=ids, attention_mask=mask), repeats)
    flops = encoder_flops(model.config, texts_tokens) * batch
    gemm = matmul_gflops(torch.float32)
    return {
        "tokens": texts_tokens,
        "batch": batch,
        "texts_s": batch / seconds,
        "achieved_gflops": flops / seconds / 1e9,
        "gemm_gflops": gemm,
        "bound_texts_s": gemm * 1e9 / (flops / batch),
    }


def generation_floor(generator_name: str, new_tokens: int, repeats: int) -> dict[str, float]:
    """Decode tokens/s of a local generator against bandwidth / weight bytes."""
    from assistant.config import Settings
    from assistant.models.local import TransformersGenerator
    from assistant.models.registry import create_generator

    settings = Settings()
    # The floor is torch's: the same model on the transformers runtime (llama.cpp's: eval.bench.runtimes).
    settings = settings.model_copy(update={"models": settings.models.model_copy(update={"runtime": "transformers"})})
    generator = create_generator(settings, generator_name)
    assert isinstance(generator, TransformersGenerator), "the generation floor needs a local transformers generator"
    model, tokenizer = generator.load()
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())  # tied weights counted once
    rates = [_decode_rate(model, new_tokens, repeats)]
    bandwidth = read_bandwidth_gbs()
    return {
        "overhead_ms": 1000 / _decode_rate(_skeleton(model), new_tokens, repeats),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "weight_mb": weight_bytes / 2**20,
        "tokens_s": statistics.median(rates),
        "bandwidth_gbs": bandwidth,
        "bound_tokens_s": bandwidth * 1e9 / weight_bytes,
    }


def gemv_gbs(rows: int, cols: int, dtype: torch.dtype = torch.bfloat16, repeats: int = 10) -> float:
    """Streaming rate of torch's matrix-vector product ``(1, cols) @ (rows, cols).T`` (a decode step's layer)."""
    w, x = torch.randn(rows, cols, dtype=dtype), torch.randn(1, cols, dtype=dtype)
    return w.numel() * w.element_size() / _best_seconds(lambda: torch.nn.functional.linear(x, w), repeats) / 1e9


def _skeleton(model: Any) -> Any:
    """The same architecture and layer count with tiny widths: its decode time per token is the framework's
    per-step overhead (Python dispatch of every layer's operators, sampling, cache updates), not weights."""
    from transformers import AutoModelForCausalLM

    config = model.config.__class__.from_dict(model.config.to_dict())
    for name, value in (("hidden_size", 64), ("intermediate_size", 128), ("head_dim", 16), ("vocab_size", 512),
                        ("query_pre_attn_scalar", 16)):
        if hasattr(config, name):
            setattr(config, name, value)
    return AutoModelForCausalLM.from_config(config).to(next(model.parameters()).dtype).eval()


def _decode_rate(model: Any, new_tokens: int, repeats: int) -> float:
    ids = torch.randint(1, 500, (1, 32))
    rates = []
    with torch.inference_mode():
        model.generate(ids, max_new_tokens=4, min_new_tokens=4, do_sample=False)
        for _ in range(repeats):
            began = time.perf_counter()
            model(ids)
            prefill = time.perf_counter() - began
            began = time.perf_counter()
            model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
            rates.append(new_tokens / (time.perf_counter() - began - prefill))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", default="gemma3-270m")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}")
    fp32, bf16 = matmul_gflops(torch.float32), matmul_gflops(torch.bfloat16)
    bandwidth = read_bandwidth_gbs()
    print("\n| measure | value |\n|---|---|")
    print(f"| GEMM fp32 (2048³) | {fp32:.0f} GFLOP/s |\n| GEMM bf16 (2048³) | {bf16:.0f} GFLOP/s |")
    print(f"| read bandwidth (1 GB, best of fp32 sum / bf16 max) | {bandwidth:.1f} GB/s |")
    print("\n| embedder input | texts/s measured | compute bound (texts/s) | achieved GFLOP/s | of GEMM rate |")
    print("|---|---|---|---|---|")
    for tokens in (64, 128, 256):
        r = embedding_floor(tokens, 32, args.repeats)
        print(f"| 32 × {tokens} tokens | {r['texts_s']:.0f} | {r['bound_texts_s']:.0f} | "
              f"{r['achieved_gflops']:.0f} | {r['achieved_gflops'] / r['gemm_gflops']:.0%} |")
    g = generation_floor(args.generator, args.new_tokens, args.repeats)
    print("\n| generator | dtype | weights (MB) | decode tokens/s | bandwidth bound (tokens/s) | of bound "
          "| per-token overhead of the layer stack (ms) |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {args.generator} | {g['dtype']} | {g['weight_mb']:.0f} | {g['tokens_s']:.1f} | "
          f"{g['bound_tokens_s']:.1f} | {g['tokens_s'] / g['bound_tokens_s']:.0%} | {g['overhead_ms']:.1f} |")
    vocab, width = 262_144, 640  # Gemma 3 270M's output layer (its tied embedding matrix)
    print(f"\nbf16 matrix-vector streaming: output layer {vocab}×{width} {gemv_gbs(vocab, width):.1f} GB/s, "
          f"a feed-forward matrix 2048×{width} {gemv_gbs(2048, width, repeats=200):.1f} GB/s")
    weights_ms = 1000 / g["bound_tokens_s"]
    print(f"\nPer token: {1000 / g['tokens_s']:.1f} ms measured = {weights_ms:.1f} ms reading weights at the measured "
          f"bandwidth + {g['overhead_ms']:.1f} ms framework overhead (tiny-width skeleton) "
          f"+ {1000 / g['tokens_s'] - weights_ms - g['overhead_ms']:.1f} ms other.")


if __name__ == "__main__":
    main()
