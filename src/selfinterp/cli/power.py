"""Power analysis and API budget of self-report study designs, by Monte-Carlo simulation.

For every combination of --contexts, --choices, --reports (comma-separated
lists) and --training-effect, simulates --replicates whole studies from the
calibrated generative model and reports the distribution of r(learned,
target) and r(reports, learned), the expected 95% CI half-width, the power to
beat the base-model control and to detect the introspection-training gain,
and what the design costs in API calls and US dollars.  --target-power P picks
the cheapest design that reaches it.  --out DIR keeps one file per finished
design, so that an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import argparse
import math

from . import _args

# the most choices and reports one power command simulates (replicates x designs x contexts x (choices + reports))
MAX_SIMULATED = 10**12


def _effect_list(text: str) -> list:
    out = []
    for part in text.split(","):
        if part.strip() == "calibrated":
            out.append(None)
            continue
        try:
            out.append(float(part))
            if out[-1] != out[-1]:
                raise ValueError
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated numbers or 'calibrated', got {text!r}") from None
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("design grid")
    g.add_argument("--contexts", type=_args.int_list(2, 1_000_000), default=None, metavar="LIST",
                   help="instilled contexts, e.g. 50,100,200 (default: calibration's, 100)")
    g.add_argument("--choices", type=_args.int_list(1, 1_000_000), default=None, metavar="LIST",
                   help="test choices per context (default: calibration's, 50)")
    g.add_argument("--reports", type=_args.int_list(1, 100_000), default=None, metavar="LIST",
                   help="report calls per context and condition (default: calibration's, 10)")
    g.add_argument("--training-effect", type=_effect_list, default=[None], metavar="LIST",
                   help="gain in the single-report correlation from introspection training, e.g. "
                        "0.05,0.1; 'calibrated' = the calibration's own trained model (default)")
    g.add_argument("--replicates", type=_args.bounded_int(1, 10_000_000), default=1000, metavar="N",
                   help="simulated studies per design (default 1000)")
    g.add_argument("--seed", type=_args.seed, default=0, metavar="S", help="seed (default 0)")
    g.add_argument("--calibration", metavar="FILE", type=_args.input_file,
                   help="calibration file from `selfinterp calibrate` (default: built-in GPT-4o)")
    c = parser.add_argument_group("budget")
    c.add_argument("--prices", metavar="FILE", type=_args.input_file,
                   help="price table (TOML; default: the packaged one)")
    c.add_argument("--price-model", default="gpt-4o-2024-08-06", metavar="NAME",
                   help="model row of the price table (default gpt-4o-2024-08-06)")
    c.add_argument("--batch", action="store_true", help="price inference at the Batch API discount")
    c.add_argument("--train-examples", type=_args.bounded_int(1, 1_000_000), default=None, metavar="N",
                   help="instillation training examples per context (default: calibration's, 50)")
    c.add_argument("--gpu-throughput", metavar="TRAIN,PREFILL,DECODE",
                   help="plan a local run in GPU-hours: tokens/s of training, prompt prefill and decoding, as "
                        "measured (a pilot run's summary.json, local_throughput)")
    c.add_argument("--gpu-usd-per-hour", type=float, metavar="USD", help="price the GPU-hours (with --gpu-throughput)")
    c.add_argument("--target-power", type=float, metavar="P",
                   help="pick the cheapest design whose power reaches P")
    c.add_argument("--test", choices=("training", "control"), default="training",
                   help="the power --target-power refers to (default: training effect)")
    o = parser.add_argument_group("output and execution")
    o.add_argument("--json", action="store_true", help='print {"designs": [...]} as JSON')
    o.add_argument("--plot", metavar="FILE.png", type=_args.output_file,
                   help="draw power and precision curves (needs the 'plot' extra)")
    o.add_argument("--out", metavar="DIR", type=_args.output_dir,
                   help="one JSON file per finished design; reused on a rerun")
    o.add_argument("--workers", type=_args.bounded_int(1, 4096), default=None, metavar="N",
                   help="run on a local dask cluster of N worker processes (needs the 'dask' extra)")
    o.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on the dask cluster of this scheduler, e.g. tcp://10.0.0.5:8786")
    o.add_argument("--connect-timeout", type=float, default=None, metavar="SECONDS",
                   help="how long to try reaching --scheduler before giving up (default 10)")
    o.add_argument("--backend", default="auto", metavar="NAME",
                   help="backend of the fused simulate-and-fit: auto, numba, numpy, jax (simulated "
                        "and fitted on the JAX device, a GPU when present, with JAX's generator), or cuda "
                        "(simulated by numba, fitted on an NVIDIA GPU); default auto")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")


def _connect(args):
    """A dask Client (and the cluster it owns), or (None, None); fails before the sweep."""
    from ..errors import InputError, require

    if args.connect_timeout is not None and not args.scheduler:
        raise InputError("--connect-timeout applies to --scheduler only (it would be ignored)")
    if args.connect_timeout is not None and not args.connect_timeout > 0:
        raise InputError(f"--connect-timeout must be positive, got {args.connect_timeout}")
    if args.scheduler and args.workers is not None:
        raise InputError("give either --scheduler or --workers, not both")
    if not args.scheduler and args.workers is None:
        return None, None
    require("distributed", "dask")
    from distributed import Client

    from ..study import local_cluster

    if args.workers is not None:
        if args.workers < 1:
            raise InputError(f"--workers must be at least 1, got {args.workers}")
        cluster = local_cluster(args.workers)
        return Client(cluster), cluster
    try:
        return Client(args.scheduler, timeout=f"{args.connect_timeout or 10.0}s"), None
    except (OSError, TimeoutError, ValueError) as exc:
        raise InputError(f"cannot reach the dask scheduler at {args.scheduler!r}: {exc}") from None


def main(args: argparse.Namespace) -> int:
    import json

    from ..errors import InputError, require
    from ..study import DEFAULT_MODEL, cheapest, design_cost, design_grid, load_calibration, load_prices, sweep
    from ..study.budget import design_gpu_hours, parse_throughput

    model = load_calibration(args.calibration) if args.calibration else DEFAULT_MODEL
    if args.replicates < 1:
        raise InputError(f"--replicates must be at least 1, got {args.replicates}")
    if args.seed < 0:
        raise InputError(f"--seed must be >= 0, got {args.seed}")
    if args.target_power is not None and not 0 < args.target_power < 1:
        raise InputError(f"--target-power must lie in (0, 1), got {args.target_power}")
    train_examples = model.design.train_examples if args.train_examples is None else args.train_examples
    if train_examples < 1:
        raise InputError(f"--train-examples must be at least 1, got {train_examples}")
    designs = design_grid(args.contexts or [model.design.contexts], args.choices or [model.design.choices],
                          args.reports or [model.design.reports], args.training_effect)
    K = model.design.attributes
    big = max(designs, key=lambda d: d.contexts * (d.choices * (2 * K + 2) + d.reports * K))
    _args.check_memory(f"one replicate of the design {big.contexts:,} contexts x {big.choices:,} choices x "
                       f"{big.reports:,} reports", 8 * 4 * big.contexts * (big.choices * (2 * K + 2) + big.reports * K))
    work = args.replicates * sum(d.contexts * (d.choices + d.reports) for d in designs)
    if work > MAX_SIMULATED:
        raise InputError(f"--replicates {args.replicates:,} over {len(designs)} design(s) simulates about {work:.2e} "
                         f"choices and reports, over the limit of {MAX_SIMULATED:.0e}; "
                         "choose fewer replicates or smaller designs")
    table = load_prices(args.prices, args.price_model)
    throughput = parse_throughput(args.gpu_throughput) if args.gpu_throughput else None
    if args.gpu_usd_per_hour is not None and throughput is None:
        raise InputError("--gpu-usd-per-hour needs --gpu-throughput")
    if args.plot:
        require("matplotlib", "plot")
    client, cluster = _connect(args)
    try:
        results = sweep(designs, model, replicates=args.replicates, seed=args.seed, out=args.out,
                        client=client, progress=False if args.no_progress else None,
                        backend=args.backend)
    except KeyboardInterrupt:
        import sys

        where = (f"the finished designs are in {args.out}: run the same command to resume"
                 if args.out else "nothing was kept: use --out DIR to keep finished designs")
        print(f"selfinterp power: interrupted; {where}", file=sys.stderr)
        return 130
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    for r in results:
        r.update(design_cost(r["contexts"], r["choices"], r["reports"], table,
                             train_examples=train_examples, batch=args.batch))
        if throughput is not None:
            r.update(design_gpu_hours(r["contexts"], r["choices"], r["reports"], table, throughput,
                                      train_examples=train_examples, usd_per_gpu_hour=args.gpu_usd_per_hour))
    chosen = cheapest(results, args.target_power, args.test) if args.target_power is not None else None
    if args.plot:
        plot_power(results, args.plot, target_power=args.target_power, test=args.test)
    if args.json:
        out = {"designs": results,
               "settings": {"replicates": args.replicates, "seed": args.seed,
                            "calibration": args.calibration or "built-in (GPT-4o)",
                            "prices": {"model": table.model, "source": table.source,
                                       "checked": table.checked, "batch": args.batch},
                            "gpu_throughput": throughput, "gpu_usd_per_hour": args.gpu_usd_per_hour}}
        if args.target_power is not None:
            out["target_power"] = {"power": args.target_power, "test": args.test, "chosen": chosen}
        print(json.dumps(out, allow_nan=False))
    else:
        print(format_power(results, table, args))
        if args.target_power is not None:
            print()
            if chosen is None:
                print(f"no design reaches power {args.target_power:g} ({args.test} test): widen the grid")
            else:
                print(f"cheapest design with power >= {args.target_power:g} ({args.test} test): "
                      f"{chosen['contexts']} contexts x {chosen['choices']} choices, {chosen['reports']} "
                      f"reports: ${chosen['cost_usd']:,.2f}")
        if args.plot:
            print(f"\nplot written to {args.plot}")
    if args.target_power is not None and chosen is None:
        return 1
    return 0


def _eff(e):
    return "calib." if e is None else f"{e:+.2f}"


def format_power(results, table, args) -> str:
    head = (f"{'C':>5} {'T':>4} {'R':>3} {'effect':>7}  {'r(learned,target)':<22}  {'r(reports,learned)':<22}"
            f"  {'+-CI':>5}  {'P(ctrl)':>7}  {'P(train)':>8}  {'calls':>9}  {'cost $':>10}")
    lines = [f"power: {args.replicates} simulated studies per design, seed {args.seed}; prices "
             f"{table.model} ({table.source}, {table.checked}){', Batch API' if args.batch else ''}",
             "", head, "-" * len(head)]
    for r in results:
        lt, rl = r["learned_vs_target"], r["reports_vs_learned"]
        lines.append(
            f"{r['contexts']:>5} {r['choices']:>4} {r['reports']:>3} {_eff(r['training_effect']):>7}  "
            f"{lt['mean']:.3f} [{lt['lo']:.3f}, {lt['hi']:.3f}]  {rl['mean']:.3f} [{rl['lo']:.3f}, {rl['hi']:.3f}]"
            f"  {r['ci_halfwidth']:5.3f}  {r['power_vs_control']:7.3f}  {r['power_training_effect']:8.3f}"
            f"  {r['api_calls']:>9,}  {r['cost_usd']:>10,.2f}"
            + (f"  {r['gpu_hours']:>8,.2f} GPU h" if "gpu_hours" in r else ""))
    lines += ["", "r: mean [2.5%, 97.5%] across simulated studies; +-CI: mean half-width of the 95% interval of "
                  "r(reports, learned);",
              "P(ctrl), P(train): share of studies whose 95% interval (context jackknife) puts reports above the "
              "base model's, and",
              "the introspection-trained reports above the weight-trained ones; cost: fine-tuning + inference."]
    if results and "gpu_hours" in results[0]:
        lines.append("GPU h: a local run's training and elicitation at the --gpu-throughput given (tokens per "
                     "call from the price table's [tokens])")
    if any(r["undefined"] for r in results):
        lines.append("some studies had an undefined r (constant reports); counted as failures: see --json 'undefined'")
    return "\n".join(lines)


def _wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a share ``p`` of ``n`` simulated studies (finite at 0 and 1)."""
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(c - h, 0.0), min(c + h, 1.0)


def plot_power(results, path, *, target_power=None, test="training"):
    """Power (both tests) and CI half-width against contexts, one line per (T, R, effect).

    Error bars are Monte-Carlo 95% intervals (Wilson for the powers, +-1.96
    standard errors for the mean half-width); a dashed line marks
    ``target_power`` on the panel of ``test``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = power_figure(results, target_power=target_power, test=test)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def power_figure(results, *, target_power=None, test="training"):
    """The matplotlib Figure that :func:`plot_power` writes."""
    import matplotlib.pyplot as plt
    import numpy as np

    groups: dict = {}
    for r in results:
        groups.setdefault((r["choices"], r["reports"], r["training_effect"]), []).append(r)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    for (T, R, e), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["contexts"])
        x = np.array([r["contexts"] for r in rs], dtype=float)
        label = f"{T} choices, {R} reports, " + ("calibrated effect" if e is None else f"effect {e:+.2f}")
        for ax, key in ((axes[0], "power_vs_control"), (axes[1], "power_training_effect")):
            p = np.array([r[key] for r in rs])
            lo, hi = np.array([_wilson(r[key], r["replicates"]) for r in rs]).T
            ax.errorbar(x, p, yerr=np.clip([p - lo, hi - p], 0, None), fmt="o-", capsize=3, label=label)
        h = np.array([r["ci_halfwidth"] for r in rs])
        se = np.array([r.get("ci_halfwidth_mcse", np.nan) for r in rs])
        axes[2].errorbar(x, h, yerr=1.96 * np.nan_to_num(se), fmt="o-", capsize=3, label=label)
    titles = ("reports beat the base-model control", "introspection training raises r",
              "precision of r(reports, learned)")
    ylabels = ("power (share of simulated studies)", "power (share of simulated studies)",
               "mean half-width of the 95% CI of r")
    for ax, title, ylabel in zip(axes, titles, ylabels):
        ax.set_xlabel("decision contexts per study")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes[:2]:
        ax.set_ylim(-0.02, 1.02)
    if target_power is not None:
        ax = axes[0] if test == "control" else axes[1]
        ax.axhline(target_power, color="k", ls="--", lw=1, label=f"target power {target_power:g}")
    axes[1].legend(fontsize=7, loc="lower right")
    n = sorted({r["replicates"] for r in results})
    fig.suptitle(f"Power analysis ({', '.join(map(str, n))} simulated studies per design; "
                 "bars: Monte-Carlo 95% intervals)", fontsize=10)
    fig.tight_layout()
    return fig
