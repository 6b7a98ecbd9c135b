"""bf16 vs fp32 for a local generator on this CPU: prefill seconds and decode tokens/s, side by side.

The ``auto`` dtype setting picks bf16 when the CPU has native bf16 instructions; this benchmark is the
measurement behind that rule. Run: ``python -m eval.bench.dtype --generator smollm2-135m``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from assistant.config import Settings
from assistant.models.local import TransformersGenerator, cpu_has_native_bf16
from assistant.models.registry import create_generator


def measure(generator: TransformersGenerator, prompt_tokens: int, new_tokens: int, repeats: int) -> dict[str, float]:
    model, tokenizer = generator.load()
    ids = torch.randint(100, tokenizer.vocab_size - 100, (1, prompt_tokens))
    prefill, decode = [], []
    with torch.inference_mode():
        model(ids)  # warm-up
        for _ in range(repeats):
            began = time.perf_counter()
            model(ids)
            prefill.append(time.perf_counter() - began)
            began = time.perf_counter()
            model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
            decode.append(new_tokens / max(time.perf_counter() - began - prefill[-1], 1e-9))
    return {"prefill_s": statistics.median(prefill), "decode_tok_s": statistics.median(decode)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", default="smollm2-135m")
    parser.add_argument("--prompt-tokens", type=int, default=600)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"native bf16 on this CPU: {cpu_has_native_bf16()}; torch threads: {torch.get_num_threads()}")
    rows = {}
    for dtype in ("float32", "bfloat16"):
        settings = Settings(models={"dtype": dtype})
        generator = create_generator(settings, args.generator)
        assert isinstance(generator, TransformersGenerator), "the dtype benchmark needs a local generator"
        rows[dtype] = measure(generator, args.prompt_tokens, args.new_tokens, args.repeats)
    print(f"\n| dtype | prefill {args.prompt_tokens} tokens (s) | decode (tokens/s) |\n|---|---|---|")
    for dtype, row in rows.items():
        print(f"| {dtype} | {row['prefill_s']:.2f} | {row['decode_tok_s']:.1f} |")
    ratio = rows["bfloat16"]["decode_tok_s"] / rows["float32"]["decode_tok_s"]
    print(f"\nbf16/fp32 decode speed: {ratio:.2f}×")


if __name__ == "__main__":
    main()
