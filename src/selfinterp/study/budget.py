"""API calls, tokens and US dollars of a study design.

Prices come from an editable TOML table (the packaged ``prices.toml``, or the
user's copy), with a source and a date per model; fine-tuning and inference
are priced separately and the Batch API discount applies to inference only.

What a design of C contexts, T choices and R reports per context costs (the
paper's experiments 1 and 2):

- fine-tuning: preference instillation on C x ``train_examples`` examples,
  then two introspection-training jobs (one per half of the contexts, C/2
  examples each), each billed ``epochs`` times per training token;
- inference on fine-tuned models: C x T choices, C x R reports of the
  weight-trained model, C x R reports of the introspection-trained models (each
  half reported by the model trained on the other half);
- inference on the base model: C x R control reports.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import InputError

__all__ = ["PriceTable", "load_prices", "design_cost", "design_gpu_hours", "parse_throughput"]

PRICES_FORMAT = "selfinterp-prices"
PRICE_FIELDS = ("training", "base_input", "base_output", "finetuned_input", "finetuned_output")
TOKEN_FIELDS = ("choice_input", "choice_output", "report_input", "report_output",
                "instill_example", "introspection_example")


@dataclass(frozen=True)
class PriceTable:
    """Prices (USD per 1M tokens) of one model and the token counts per call."""

    model: str
    prices: dict
    tokens: dict
    epochs: float
    batch_discount: float
    source: str
    checked: str


def _number(where: str, value, *, allow_zero=True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{where} must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise InputError(f"{where} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return float(value)


def load_prices(path=None, model: str = "gpt-4o-2024-08-06") -> PriceTable:
    """Read the price table (the packaged one when ``path`` is None) for ``model``.

    Negative prices or token counts, a discount outside [0, 1), an unknown
    model or a missing field raise :class:`~selfinterp.errors.InputError`.
    """
    if path is None:
        text = resources.files("selfinterp.study").joinpath("prices.toml").read_text("utf-8")
        where = "packaged prices.toml"
    else:
        path = Path(path)
        try:
            text = path.read_text("utf-8")
        except FileNotFoundError:
            raise InputError(f"price table {path} does not exist") from None
        where = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{where}: not valid TOML: {exc}") from None
    if data.get("format") != PRICES_FORMAT or data.get("version") != 1:
        raise InputError(f"{where}: expected format = {PRICES_FORMAT!r} and version = 1")
    models = data.get("models", {})
    if model not in models:
        raise InputError(f"{where}: no prices for model {model!r}; known: {sorted(models)}")
    row = models[model]
    for f in PRICE_FIELDS + ("source", "checked"):
        if f not in row:
            raise InputError(f"{where}: [models.{model!r}] lacks {f!r}")
    tokens = data.get("tokens", {})
    for f in TOKEN_FIELDS:
        if f not in tokens:
            raise InputError(f"{where}: [tokens] lacks {f!r}")
    discount = _number(f"{where}: batch_discount", data.get("batch_discount"))
    if not discount < 1:
        raise InputError(f"{where}: batch_discount must be below 1, got {discount}")
    return PriceTable(
        model=model,
        prices={f: _number(f"{where}: models.{model}.{f}", row[f]) for f in PRICE_FIELDS},
        tokens={f: _number(f"{where}: tokens.{f}", tokens[f]) for f in TOKEN_FIELDS},
        epochs=_number(f"{where}: epochs", data.get("epochs"), allow_zero=False),
        batch_discount=discount,
        source=str(row["source"]),
        checked=str(row["checked"]),
    )


def design_cost(contexts: int, choices: int, reports: int, table: PriceTable, *,
                train_examples: int = 50, batch: bool = False) -> dict:
    """Calls, tokens and dollars of one design (see the module docstring for what is counted).

    Returns
    -------
    dict
        ``api_calls`` (inference calls), ``finetune_jobs``, ``training_tokens``
        (before epochs), ``input_tokens``, ``output_tokens``, ``cost_usd`` and its
        parts ``cost_finetuning_usd`` and ``cost_inference_usd``.
    """
    t, p = table.tokens, table.prices
    choice_calls = contexts * choices
    ft_report_calls = 2 * contexts * reports  # weight-trained + introspection-trained
    base_report_calls = contexts * reports
    training_tokens = (contexts * train_examples * t["instill_example"]
                       + contexts * t["introspection_example"])
    ft_in = choice_calls * t["choice_input"] + ft_report_calls * t["report_input"]
    ft_out = choice_calls * t["choice_output"] + ft_report_calls * t["report_output"]
    base_in = base_report_calls * t["report_input"]
    base_out = base_report_calls * t["report_output"]
    per_m = 1e-6
    finetune = training_tokens * table.epochs * p["training"] * per_m
    inference = (ft_in * p["finetuned_input"] + ft_out * p["finetuned_output"]
                 + base_in * p["base_input"] + base_out * p["base_output"]) * per_m
    if batch:
        inference *= 1.0 - table.batch_discount
    return {
        "api_calls": int(choice_calls + ft_report_calls + base_report_calls),
        "finetune_jobs": 3,
        "training_tokens": int(round(training_tokens)),
        "input_tokens": int(round(ft_in + base_in)),
        "output_tokens": int(round(ft_out + base_out)),
        "cost_finetuning_usd": round(finetune, 2),
        "cost_inference_usd": round(inference, 2),
        "cost_usd": round(finetune + inference, 2),
    }


def parse_throughput(text: str, *, where: str = "--gpu-throughput") -> dict:
    """``TRAIN,PREFILL,DECODE`` tokens per second (as measured by a pilot run) into a dict."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 3:
        raise InputError(f"{where}: expected three numbers TRAIN,PREFILL,DECODE (tokens per second), got {text!r}")
    out = {}
    for name, p in zip(("train", "prefill", "decode"), parts):
        try:
            v = float(p)
        except ValueError:
            raise InputError(f"{where}: {name} throughput {p!r} is not a number") from None
        out[name] = _number(f"{where}: {name} throughput", v, allow_zero=False)
    return out


def design_gpu_hours(contexts: int, choices: int, reports: int, table: PriceTable, throughput: dict, *,
                     train_examples: int = 50, epochs: float | None = None, usd_per_gpu_hour: float | None = None,
                     both_orders: bool = True) -> dict:
    """GPU-hours of one design on the local backend, at a throughput you measured.

    The same calls and tokens per call as :func:`design_cost` (the price
    table's ``[tokens]``), the choices asked in both orders by default (as
    ``selfinterp run`` does), read from one forward pass each (their prompt
    tokens at the ``prefill`` rate); reports at the ``decode`` rate of their
    answers' tokens (the time to read their prompts is part of that rate as a
    run measures it); training processes every training token ``epochs``
    times (default: the table's epochs).

    Parameters
    ----------
    throughput : dict
        Tokens per second of ``train`` (forward and backward), ``prefill`` and
        ``decode`` on your device, model and batch sizes: read them off a pilot
        run (``summary.json``'s ``local_throughput``) or a benchmark.
    usd_per_gpu_hour : float, optional
        Prices the hours.
    """
    for k in ("train", "prefill", "decode"):
        _number(f"throughput {k}", throughput.get(k), allow_zero=False)
    t = table.tokens
    epochs = table.epochs if epochs is None else _number("epochs", epochs, allow_zero=False)
    orders = 2 if both_orders else 1
    train_tokens = (contexts * train_examples * t["instill_example"] + contexts * t["introspection_example"]) * epochs
    choice_calls = orders * contexts * choices
    report_calls = 3 * contexts * reports  # base, weight-trained, introspection-trained
    prefill = choice_calls * t["choice_input"]
    decode = report_calls * t["report_output"]
    h_train = train_tokens / throughput["train"] / 3600
    h_inf = (prefill / throughput["prefill"] + decode / throughput["decode"]) / 3600
    out = {"train_tokens": int(round(train_tokens)), "prefill_tokens": int(round(prefill)),
           "decode_tokens": int(round(decode)), "gpu_hours_training": round(h_train, 3),
           "gpu_hours_inference": round(h_inf, 3), "gpu_hours": round(h_train + h_inf, 3)}
    if usd_per_gpu_hour is not None:
        out["cost_gpu_usd"] = round((h_train + h_inf) * _number("usd_per_gpu_hour", usd_per_gpu_hour), 2)
    return out
