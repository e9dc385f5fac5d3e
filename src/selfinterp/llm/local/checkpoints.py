"""Every saved checkpoint of a local fine-tuning job, evaluated: the run followed through training.

For each checkpoint of a stage's job (``save_steps`` apart, and the final
adapter), the checkpoint's adapter is stored like any other (named by its
content hash), then asked for choices and self-reports on the stage's
evaluation contexts through the pipeline's own stages (request cache,
transcripts ``STAGE_stepN_choices`` / ``STAGE_stepN_reports``).  Measured per
step, with the intervals of ``selfinterp replicate`` (95% percentile bootstrap
resampling whole contexts):

- decision accuracy: the share of pairs whose choice (P > 0.5) is the option the targets prefer;
- r(learned, target): the learned weights against the target weights;
- r(reports, learned): the self-reports against the weights learned from the same checkpoint's choices.

The result is an xarray Dataset along ``step`` (``OUT/checkpoints_STAGE.nc``), and a
plot of faithfulness and decision accuracy against step.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from ...errors import InputError

__all__ = ["follow_checkpoints", "plot_checkpoints", "STAGES"]

STAGES = ("instill", "itrain_first", "itrain_last", "itrain_all")


def _checkpoint_adapter(ckpt: Path, adapters: Path, *, base_label: str, suffix: str) -> str:
    """Store a Trainer checkpoint's adapter in the run's adapter store (sanitised config); its model name."""
    from .engine import adapter_hash, adapter_name

    tmp = adapters / f".{ckpt.parent.parent.name}-{ckpt.name}.part"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    shutil.copyfile(ckpt / "adapter_model.safetensors", tmp / "adapter_model.safetensors")
    cfg = json.loads((ckpt / "adapter_config.json").read_text(encoding="utf-8"))
    cfg["base_model_name_or_path"], cfg["revision"] = base_label, None
    (tmp / "adapter_config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True), encoding="utf-8")
    digest = adapter_hash(tmp)
    dest = adapters / digest[:16]
    if dest.exists():
        shutil.rmtree(tmp)
    else:
        tmp.replace(dest)
    return adapter_name(suffix, digest)


def _score(a, b, n_boot: int, seed: int) -> tuple[float, float, float]:
    from ... import score as sc

    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
    try:
        s = sc.score(a[ok], b[ok], n_boot=n_boot, rng=seed)
    except InputError:  # fewer than 2 contexts, or constant weights: r undefined
        return np.nan, np.nan, np.nan
    return float(s.r), float(s.ci[0]), float(s.ci[1])


def follow_checkpoints(run, stage: str = "instill", *, n_boot: int = 2000, echo=print):
    """Evaluate every checkpoint of ``stage``'s job of a local run (:class:`~selfinterp.llm.pipeline.ExperimentRun`
    whose stage has finished); returns the Dataset along ``step`` and writes it to ``OUT/checkpoints_STAGE.nc``."""
    import xarray as xr

    from ..finetune_data import two_fold
    from .train import checkpoint_steps, read_job

    exp = run.exp
    if exp.backend != "local":
        raise InputError(f"{exp.source}: checkpoints are followed for the local backend only (backend = \"local\")")
    if stage not in STAGES:
        raise InputError(f"stage must be one of {list(STAGES)}, got {stage!r}")
    rec = run.manifest.stages.get(stage, {})
    if rec.get("status") != "succeeded":
        raise InputError(f"{exp.out}: stage {stage!r} has not finished training; run `selfinterp run` first")
    root = exp.out / "local"
    folder = root / "jobs" / rec["job_id"]
    job = read_job(folder)
    steps = checkpoint_steps(folder)
    if not steps:
        raise InputError(f"{folder}: no checkpoint was saved (save_steps = {job['hyperparameters']['save_steps']} "
                         f"is more than the {job['metrics']['steps']} steps trained)")
    first, last = two_fold(exp.n_instilled)
    idx = {"instill": run.instilled, "itrain_first": last, "itrain_last": first, "itrain_all": run.native}[stage]
    if len(idx) == 0:
        raise InputError(f"stage {stage!r} has no contexts to evaluate on (n_native = 0)")
    has_target = stage != "itrain_all"
    names = [(s, _checkpoint_adapter(p, root / "adapters", base_label=exp.model, suffix=f"{stage}-step{s}"))
             for s, p in steps]
    if job["metrics"]["steps"] not in {s for s, _ in steps}:
        names.append((job["metrics"]["steps"], job["fine_tuned_model"]))
    n_pairs = exp.n_pairs if stage != "itrain_all" else exp.n_pairs_native
    rows = []
    for k, (step, name) in enumerate(names):
        echo(f"[checkpoints] {stage} step {step}: {name}")
        # the same pairs at every step (one named stream per stage)
        learned, y, _ = run.choices(name, idx, n_pairs, f"{stage}_step{step}_choices",
                                    pairs_stream=f"{stage}_checkpoints")
        reports, _ = run.reports(f"{stage}_step{step}_reports", name, idx)
        if has_target:
            from ..finetune_data import deterministic_choice

            pairs = run.pairs(f"{stage}_checkpoints", n_pairs)
            want = np.stack([deterministic_choice(run.contexts[i], run.targets[i], *pairs[i]) for i in idx])
            ok = np.isfinite(y)
            acc = float(np.mean((y[ok] > 0.5) == want[ok])) if ok.any() else np.nan
            r_t = _score(learned, run.targets[idx], n_boot, seed=exp.seed + 2 * k)
        else:
            acc, r_t = np.nan, (np.nan, np.nan, np.nan)
        r_f = _score(reports, learned, n_boot, seed=exp.seed + 2 * k + 1)
        rows.append((step, name, acc, r_t, r_f))
    ds = xr.Dataset(
        {"decision_accuracy": ("step", [r[2] for r in rows]),
         "r_learned_target": ("step", [r[3][0] for r in rows]),
         "r_learned_target_ci": (("step", "bound"), [list(r[3][1:]) for r in rows]),
         "r_reports_learned": ("step", [r[4][0] for r in rows]),
         "r_reports_learned_ci": (("step", "bound"), [list(r[4][1:]) for r in rows]),
         "model": ("step", [r[1] for r in rows])},
        coords={"step": [r[0] for r in rows], "bound": ["lower", "upper"]},
        attrs={"stage": stage, "n_contexts": len(idx), "n_boot": n_boot,
               "ci": "95% percentile interval of a bootstrap resampling whole contexts (as selfinterp replicate)",
               "decision_accuracy": "share of pairs whose choice (P > 0.5) is the option the target weights prefer",
               "r_reports_learned": "self-reports against the weights learned from the same checkpoint's choices"})
    from ...labelled import to_netcdf

    to_netcdf(ds, exp.out / f"checkpoints_{stage}.nc")
    return ds


def plot_checkpoints(ds, path) -> Path:
    """Faithfulness r(reports, learned) with its interval, r(learned, target) and decision accuracy against step."""
    from ...errors import require

    require("matplotlib", "plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    step = ds["step"].values
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for var, label, color in (("r_reports_learned", "faithfulness r(reports, learned)", "C0"),
                              ("r_learned_target", "r(learned, target)", "C1")):
        ci = ds[f"{var}_ci"].values
        ax.plot(step, ds[var].values, "o-", color=color, label=label)
        ax.fill_between(step, ci[:, 0], ci[:, 1], color=color, alpha=0.2, lw=0)
    ax.plot(step, ds["decision_accuracy"].values, "s--", color="C2", label="decision accuracy")
    ax.axhline(0, color="0.8", lw=0.5)
    ax.set(xlabel="training step", ylabel="r / accuracy", ylim=(-1.05, 1.05),
           title=f"{ds.attrs['stage']}: {ds.attrs['n_contexts']} contexts, 95% bootstrap intervals")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
