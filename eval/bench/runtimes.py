"""Generator runtimes side by side: llama.cpp (4-bit weights as stored) against transformers (dequantised).

For each bundled model and runtime, in a fresh child process (so load time and peak memory are its own):

- **load**: seconds from nothing to a model ready to answer (transformers loads its cached dequantised
  copy; the one-time GGUF conversion is done before timing and reported apart);
- **prefill**: prompt tokens/s over a real four-passage RAG prompt (time to the first generated token);
- **decode**: generated tokens/s after the first, writing 128 tokens of a summary;
- **peak RSS** of the child;
- **of floor**: decode tokens/s against the memory-bandwidth floor, ``bandwidth / bytes read per token``
  (every weight is read once per token: the GGUF file's tensor bytes for llama.cpp, parameters x dtype
  size for transformers). Bandwidth is measured in the same run (`eval.bench.floors.read_bandwidth_gbs`).

Run: ``python -m eval.bench.runtimes`` (about 10 minutes; ``--models``/``--runtimes`` to narrow).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from assistant.config import Settings, parse_overrides
from assistant.models.base import Message
from assistant.models.registry import create_generator
from assistant.prompts import build_messages
from assistant.types import Hit

MODELS = ["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]
RUNTIMES = ["llama.cpp", "transformers"]
SQUAD = Path(__file__).resolve().parents[3] / "shared" / "data" / "dev" / "squad" / "dev-v1.1.rebuilt.json"


def rag_prompt() -> list[Message]:
    """Four paragraphs of one SQuAD article as sources, and a request that makes the model write at length."""
    article = json.loads(SQUAD.read_text())["data"][0]
    hits = [
        Hit(f"p{i}", p["context"], 1.0, article["title"], f"p{i}", article["title"], article["title"])
        for i, p in enumerate(article["paragraphs"][:4])
    ]
    return build_messages("Summarise everything the sources say, source by source, in detail.", hits)


def _prompt_tokens(generator: Any, messages: list[Message]) -> int:
    if hasattr(generator, "tokenize"):  # llama.cpp
        return len(generator.tokenize(generator.render(messages)))
    _, tokenizer = generator.load()
    return len(tokenizer(generator.render(messages), add_special_tokens=False)["input_ids"])


def _generated_tokens(generator: Any, text: str) -> int:
    if hasattr(generator, "tokenize"):
        return len(generator.load().tokenize(text.encode("utf-8"), add_bos=False, special=False))
    _, tokenizer = generator.load()
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def weight_bytes(generator: Any) -> int:
    """Bytes one decoded token reads: every weight once."""
    if hasattr(generator, "tokenize"):
        from gguf import GGUFReader

        return sum(int(t.n_bytes) for t in GGUFReader(str(generator.path)).tensors)
    model, _ = generator.load()
    return sum(p.numel() * p.element_size() for p in model.parameters())


def peak_rss_mb() -> int:
    """This process's peak resident memory (VmHWM). Not ``ru_maxrss``: Linux carries that high-water mark
    across exec from the parent, whose bandwidth buffers (2 GB) would mask every child's own peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def measure_one(model: str, runtime: str, repeats: int, overrides: list[str]) -> dict[str, Any]:
    """One model on one runtime, in this process: load, prefill and decode rates, peak RSS."""
    settings = Settings(**parse_overrides([f"models.runtime={runtime}", *overrides]))
    generator = create_generator(settings, model)
    began = time.perf_counter()
    generator.generate([Message("user", "Hi")], max_new_tokens=1)
    load = time.perf_counter() - began
    if repeats == 0:  # only load (transformers writes its dequantised copy, outside the timed runs)
        return {"model": model, "runtime": runtime, "load_s": round(load, 2)}
    messages = rag_prompt()
    prompt_tokens = _prompt_tokens(generator, messages)
    prefill, decode = [], []
    for _ in range(repeats):
        if hasattr(generator, "tokenize"):
            generator.load().reset()  # llama.cpp would reuse the identical prompt's cached keys and values
        began = time.perf_counter()
        first, pieces = None, []
        for piece in generator.stream(messages, max_new_tokens=128):
            if first is None:
                first = time.perf_counter()
            pieces.append(piece)
        end = time.perf_counter()
        assert first is not None
        generated = _generated_tokens(generator, "".join(pieces))
        prefill.append(prompt_tokens / (first - began))
        decode.append((generated - 1) / (end - first) if generated > 1 else float("nan"))
    return {
        "model": model,
        "runtime": runtime,
        "dtype": getattr(generator, "dtype", "q4_k_m (as stored)"),
        "load_s": round(load, 2),
        "prompt_tokens": prompt_tokens,
        "prefill_tok_s": round(statistics.median(prefill), 1),
        "decode_tok_s": round(statistics.median(decode), 1),
        "weight_mb": round(weight_bytes(generator) / 1e6),
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--runtimes", nargs="+", default=RUNTIMES, choices=RUNTIMES)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "RUNTIME"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path("eval/results/runtimes.json"))
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(*args.one, args.repeats, args.overrides)))
        return

    from eval.bench.floors import read_bandwidth_gbs

    bandwidth = read_bandwidth_gbs()
    rows = []
    for model in args.models:
        for runtime in args.runtimes:
            if runtime == "transformers":  # convert once outside the timing (written to the model cache)
                measure_cmd = [sys.executable, "-m", "eval.bench.runtimes", "--one", model, runtime, "--repeats", "0"]
                subprocess.run(measure_cmd + sum((["--set", o] for o in args.overrides), []), check=True, capture_output=True)
            command = [sys.executable, "-m", "eval.bench.runtimes", "--one", model, runtime, "--repeats", str(args.repeats)]
            command += sum((["--set", o] for o in args.overrides), [])
            result = subprocess.run(command, check=True, capture_output=True, text=True)
            row = json.loads(result.stdout.strip().splitlines()[-1])
            floor = bandwidth * 1e9 / (row["weight_mb"] * 1e6)
            row.update(floor_tok_s=round(floor, 1), of_floor=round(row["decode_tok_s"] / floor, 2))
            rows.append(row)
            print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"bandwidth_gbs": round(bandwidth, 1), "rows": rows}, indent=2))
    print(f"\nread bandwidth: {bandwidth:.1f} GB/s\n")
    print("| model | runtime | weights read per token (MB) | load s | prefill tok/s | decode tok/s | floor tok/s | of floor | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['runtime']} ({r['dtype']}) | {r['weight_mb']} | {r['load_s']} | {r['prefill_tok_s']} | "
            f"{r['decode_tok_s']} | {r['floor_tok_s']} | {r['of_floor']:.0%} | {r['peak_rss_mb']} |"
        )


if __name__ == "__main__":
    main()
