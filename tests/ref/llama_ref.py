#!/usr/bin/python3
"""Independent numpy (float64) reference forward pass of a Hugging Face
LlamaForCausalLM, used to produce test fixtures for the C++ implementation.

Reads model.safetensors + config.json directly (no torch / transformers).

Usage (from the repo root):
    /usr/bin/python3 tests/ref/llama_ref.py --check
    /usr/bin/python3 tests/ref/llama_ref.py [--data DIR] [--out DIR]

--check  compares against testvectors/stories260K_logits.json (llama2.c's own
         forward pass) and prints the max abs diff; fails if it is > 1e-4.
Without --no-write, the fixtures are (re)written into --out.
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


# ---------------------------------------------------------------- safetensors

def load_safetensors(path):
    """Return {name: float64 ndarray}. Supports F32, F16, BF16 (and F64)."""
    with open(path, "rb") as f:
        raw = f.read()
    (hlen,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + hlen].decode("utf-8"))
    base = 8 + hlen
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        buf = raw[base + begin:base + end]
        dtype, shape = info["dtype"], info["shape"]
        if dtype == "F32":
            a = np.frombuffer(buf, dtype="<f4")
        elif dtype == "F16":
            a = np.frombuffer(buf, dtype="<f2")
        elif dtype == "F64":
            a = np.frombuffer(buf, dtype="<f8")
        elif dtype == "BF16":
            # bf16 is the high half of an f32: shift the 16 bits up.
            u16 = np.frombuffer(buf, dtype="<u2").astype(np.uint32)
            a = (u16 << np.uint32(16)).view(np.float32)
        else:
            raise ValueError(f"{name}: unsupported dtype {dtype}")
        n = int(np.prod(shape)) if shape else 1
        if a.size != n:
            raise ValueError(f"{name}: {a.size} elements for shape {shape}")
        out[name] = a.astype(np.float64).reshape(shape)
    return out


# ---------------------------------------------------------------- model

class Llama:
    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json")) as f:
            cfg = json.load(f)
        self.cfg = cfg
        w = load_safetensors(os.path.join(model_dir, "model.safetensors"))
        self.w = w
        self.dim = cfg["hidden_size"]
        self.n_layers = cfg["num_hidden_layers"]
        self.n_heads = cfg["num_attention_heads"]
        self.n_kv = cfg.get("num_key_value_heads") or self.n_heads
        self.head_dim = cfg.get("head_dim") or self.dim // self.n_heads
        self.eps = cfg.get("rms_norm_eps", 1e-6)
        self.theta = cfg.get("rope_theta", 10000.0)
        self.vocab = cfg["vocab_size"]
        if cfg.get("rope_scaling"):
            raise NotImplementedError("rope_scaling not supported")
        if cfg.get("hidden_act", "silu") != "silu":
            raise NotImplementedError("only silu MLP supported")
        self.embed = w["model.embed_tokens.weight"]
        if cfg.get("tie_word_embeddings", False) or "lm_head.weight" not in w:
            self.lm_head = self.embed
        else:
            self.lm_head = w["lm_head.weight"]
        half = self.head_dim // 2
        self.inv_freq = self.theta ** (-np.arange(half, dtype=np.float64) * 2.0 / self.head_dim)

    def rmsnorm(self, x, weight):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * weight

    def rope(self, x, pos):
        """x: [T, H, head_dim]; HF rotate_half: pairs (i, i + head_dim/2)."""
        ang = pos[:, None].astype(np.float64) * self.inv_freq[None, :]   # [T, half]
        cos = np.cos(ang)[:, None, :]
        sin = np.sin(ang)[:, None, :]
        half = self.head_dim // 2
        x1, x2 = x[..., :half], x[..., half:]
        return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)

    def forward(self, ids):
        """Full causal forward over ids; returns logits [T, vocab] (float64)."""
        ids = np.asarray(ids, dtype=np.int64)
        T = len(ids)
        pos = np.arange(T)
        H, KV, hd = self.n_heads, self.n_kv, self.head_dim
        group = H // KV
        x = self.embed[ids]                                           # [T, dim]
        mask = np.triu(np.full((T, T), -np.inf), k=1)
        for l in range(self.n_layers):
            p = f"model.layers.{l}."
            h = self.rmsnorm(x, self.w[p + "input_layernorm.weight"])
            q = (h @ self.w[p + "self_attn.q_proj.weight"].T).reshape(T, H, hd)
            k = (h @ self.w[p + "self_attn.k_proj.weight"].T).reshape(T, KV, hd)
            v = (h @ self.w[p + "self_attn.v_proj.weight"].T).reshape(T, KV, hd)
            q = self.rope(q, pos)
            k = self.rope(k, pos)
            att_out = np.empty((T, H, hd))
            for hh in range(H):
                kh = hh // group
                s = (q[:, hh, :] @ k[:, kh, :].T) / math.sqrt(hd) + mask  # [T, T]
                s = s - s.max(axis=-1, keepdims=True)
                e = np.exp(s)
                pr = e / e.sum(axis=-1, keepdims=True)
                att_out[:, hh, :] = pr @ v[:, kh, :]
            x = x + att_out.reshape(T, H * hd) @ self.w[p + "self_attn.o_proj.weight"].T
            h = self.rmsnorm(x, self.w[p + "post_attention_layernorm.weight"])
            g = h @ self.w[p + "mlp.gate_proj.weight"].T
            u = h @ self.w[p + "mlp.up_proj.weight"].T
            silu = g / (1.0 + np.exp(-g))
            x = x + (silu * u) @ self.w[p + "mlp.down_proj.weight"].T
        x = self.rmsnorm(x, self.w["model.norm.weight"])
        return x @ self.lm_head.T

    def greedy(self, start, n):
        """n greedy (argmax) ids after start (full recompute each step).
        Returns (ids, min top1-top2 logit margin over the n steps, its step)."""
        seq = list(start)
        out, min_margin, min_step = [], math.inf, -1
        for step in range(n):
            logits = self.forward(seq)[-1]
            top2 = np.sort(logits)[-2:]
            if top2[1] - top2[0] < min_margin:
                min_margin, min_step = float(top2[1] - top2[0]), step
            nxt = int(np.argmax(logits))
            out.append(nxt)
            seq.append(nxt)
        return out, min_margin, min_step


# ---------------------------------------------------------------- tasks

def check(data_dir):
    tv_path = os.path.join(data_dir, "testvectors", "stories260K_logits.json")
    with open(tv_path) as f:
        tv = json.load(f)
    m = Llama(os.path.join(data_dir, "models", "stories260K-hf"))
    want = np.array(tv["logits"], dtype=np.float64)
    # Logits after every prompt position and every fed-back greedy id.
    seq = list(tv["prompt_ids"]) + list(tv["greedy_ids"])[:want.shape[0] - len(tv["prompt_ids"])]
    got = m.forward(seq)
    diff = float(np.max(np.abs(got - want)))
    greedy_ok = [int(i) for i in np.argmax(got[len(tv["prompt_ids"]) - 1:], axis=-1)] == tv["greedy_ids"][:want.shape[0] - len(tv["prompt_ids"]) + 1]
    print(f"stories260K vs llama2.c ({want.shape[0]} positions x {want.shape[1]}): "
          f"max abs diff {diff:.3e}; greedy ids match: {greedy_ok}")
    ok = diff < 1e-4 and greedy_ok

    # Second, independent check of the Hugging Face conventions (rotate_half,
    # GQA, tied head): hf-tiny/smollm2 is a LlamaForCausalLM with logits from
    # HF transformers in float64 (HF keeps RoPE/RMSNorm/softmax in fp32, so ~1e-7).
    hf_dir = os.path.join(data_dir, "models", "hf-tiny", "smollm2")
    if os.path.exists(os.path.join(hf_dir, "reference_logits.json")):
        with open(os.path.join(hf_dir, "reference_logits.json")) as f:
            r = json.load(f)
        m = Llama(hf_dir)
        d2 = max(float(np.max(np.abs(m.forward(s) - np.array(lg))))
                 for s, lg in zip(r["sequences"], r["logits"]))
        print(f"hf-tiny/smollm2 vs HF transformers: max abs diff {d2:.3e}")
        ok = ok and d2 < 1e-6
    return ok


def write_fixtures(data_dir, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    ref = "tests/ref/llama_ref.py numpy float64"

    m = Llama(os.path.join(data_dir, "models", "stories260K-hf"))
    ids, margin, mstep = m.greedy([1], 200)
    path = os.path.join(out_dir, "stories260K_greedy200.json")
    with open(path, "w") as f:
        json.dump({"model": "stories260K", "start": [1], "ids": ids,
                   "min_top2_margin": float(f"{margin:.6g}"),
                   "min_top2_margin_step": mstep,
                   "reference": ref}, f)
        f.write("\n")
    print(f"wrote {path}: first 30 ids {ids[:30]}; "
          f"min top1-top2 margin {margin:.6g} at step {mstep}")

    m = Llama(os.path.join(data_dir, "models", "tiny-random-llama-2"))
    seq = [1, 450, 1996, 2354, 1701, 432, 2999, 2871, 13, 100]  # fixed, all < 3000
    assert all(0 <= t < m.vocab for t in seq)
    logits = m.forward(seq)
    g, gmargin, gstep = m.greedy(seq, 20)
    path = os.path.join(out_dir, "tiny_random_llama2_logits.json")
    with open(path, "w") as f:
        json.dump({"model": "tiny-random-llama-2", "ids": seq,
                   "logits": [[float(f"{x:.6g}") for x in row] for row in logits],
                   "greedy": g, "greedy_min_top2_margin": float(f"{gmargin:.6g}"),
                   "greedy_min_top2_margin_step": gstep,
                   "reference": ref}, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path}: ids {seq}; greedy {g}; "
          f"min top1-top2 margin {gmargin:.6g} at step {gstep}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(REPO_ROOT, "..", "shared", "data"),
                    help="shared data dir (default: ../shared/data from the repo root)")
    ap.add_argument("--out", default=os.path.join(REPO_ROOT, "tests", "fixtures"),
                    help="fixture output dir (default: tests/fixtures)")
    ap.add_argument("--check", action="store_true",
                    help="compare with testvectors/stories260K_logits.json first")
    ap.add_argument("--no-write", action="store_true", help="do not write fixtures")
    a = ap.parse_args()
    if a.check and not check(a.data):
        print("CHECK FAILED", file=sys.stderr)
        return 1
    if not a.no_write:
        write_fixtures(a.data, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
