"""Run a whole self-interpretability experiment against OpenAI, any OpenAI-compatible server, or an open-weight model.

Instils random preferences by fine-tuning, measures the learned weights from
the model's choices, collects self-reports, trains introspection on half of
the contexts and evaluates it on the other half and on native preferences.
Every stage resumes where it stopped: run the same command again (a failed
fine-tuning job: with --retry-failed).  --dry-run prints what each stage would
ask and cost, and asks nothing.  The API key is read from OPENAI_API_KEY only.
With backend = "local" in the file, the model is fine-tuned with LoRA and asked
in this process (see docs/local.md).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", help="the experiment file (TOML; see docs/llm.md)")
    parser.add_argument("--base-url", help="an OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1 "
                                           "(default: the file's base_url, else OpenAI)")
    parser.add_argument("--model", help="the base model (default: the file's model)")
    parser.add_argument("--out", help="output directory (default: the file's out, else EXPERIMENT-out beside it)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print each stage's requests, tokens and dollars (an upper bound); call nothing")
    parser.add_argument("--retry-failed", action="store_true",
                        help="start a new job for a stage whose fine-tuning job failed or was cancelled "
                             "(the failed job stays in the manifest)")
    parser.add_argument("--reask-invalid", action="store_true",
                        help="ask again the requests whose stored reply is invalid (after fixing the server "
                             "or template); valid replies are kept")


def main(args) -> int:
    import json
    import sys

    from ..errors import InputError
    from ..llm.client import LLMError
    from ..llm.config import load_experiment
    from ..llm.pipeline import ExperimentRun

    from ..llm.plan import Design, format_plan

    exp = load_experiment(args.experiment, base_url=args.base_url, model=args.model, out=args.out)
    if args.dry_run:
        if args.retry_failed or args.reask_invalid:
            raise InputError("--dry-run calls nothing: --retry-failed and --reask-invalid would be ignored")
        print(format_plan(Design(exp).plan(), exp.max_usd))
        return 0
    run = ExperimentRun(exp, retry_failed=args.retry_failed, reask_invalid=args.reask_invalid)
    try:
        summary = run.run()
    except LLMError as exc:
        print(f"selfinterp run: stopped: {exc}\n(everything received so far is kept in {exp.out}; "
              "run the same command again to resume)", file=sys.stderr)
        return 1
    finally:
        run.close()
    print(json.dumps({"out": str(exp.out), "scores": summary["scores"], "total_usd": summary["cost"]["total_usd"],
                      "seconds": summary.get("seconds", {})}, indent=2, allow_nan=False))
    return 0
