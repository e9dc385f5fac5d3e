"""The experiment file (TOML): every setting of a ``selfinterp run``, checked before any request.

See docs/llm.md for the format.  Unknown keys are errors (a typo never falls
back silently to a default).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import InputError
from .elicit import ChoiceSpec
from .manifest import sha256_file
from .pricing import PriceTable
from .prompts import PromptTemplate, load_template

__all__ = ["Experiment", "load_experiment"]

_SECTIONS = {
    "": {"name", "seed", "model", "base_url", "out", "template", "finetune", "contexts", "instill", "choices", "reports",
         "introspection", "requests", "prices", "max_usd", "backend", "local"},
    "contexts": {"catalog", "roles", "n_instilled", "n_native"},
    "instill": {"n_train", "n_validation", "suffix", "hyperparameters"},
    "choices": {"n_pairs", "n_pairs_native", "method", "both_orders", "top_logprobs", "max_tokens"},
    "reports": {"n_reports", "temperature", "max_tokens"},
    "introspection": {"examples_per_context", "suffix", "hyperparameters"},
    "requests": {"concurrency", "max_retries", "timeout", "batch", "poll_first", "poll_max", "stop_if_all_invalid"},
}


@dataclass(frozen=True)
class Experiment:
    """A parsed experiment file (paths resolved against the file's folder)."""

    name: str
    seed: int
    model: str
    base_url: str | None
    out: Path
    template: PromptTemplate
    catalog: Path
    roles: Path | None
    n_instilled: int = 100
    n_native: int = 100
    n_train: int = 50
    n_validation: int = 10
    instill_suffix: str = "instill"
    instill_hyperparameters: dict = field(default_factory=dict)
    choices: ChoiceSpec = ChoiceSpec()
    n_pairs: int = 50
    n_pairs_native: int = 100
    n_reports: int = 10
    report_temperature: float = 0.0
    report_max_tokens: int = 200
    itrain_examples: int = 1
    itrain_suffix: str = "itrain"
    itrain_hyperparameters: dict = field(default_factory=dict)
    concurrency: int = 8
    max_retries: int = 5
    timeout: float = 60.0
    batch: bool = False
    poll_first: float = 5.0
    poll_max: float = 120.0
    stop_if_all_invalid: bool = True
    prices: PriceTable = PriceTable.from_config(None)
    finetune: bool = True
    max_usd: float | None = None
    source: Path | None = None
    backend: str = "openai"
    local: object = None  # LocalSettings where backend = "local" (selfinterp.llm.local)

    def fingerprint(self) -> str:
        """Identifies what the experiment asks (not how fast or where): seeds, sizes, model, prompts, inputs."""
        d = {k: v for k, v in asdict(self).items()
             if k not in {"base_url", "out", "concurrency", "max_retries", "timeout", "batch", "poll_first",
                          "poll_max", "prices", "source", "catalog", "roles", "max_usd", "backend", "local",
                          "stop_if_all_invalid"}}
        if self.backend != "openai":  # (absent for the server path: its fingerprints stay as they were)
            d["backend"], d["local"] = self.backend, self.local.identity()
        d["catalog_sha256"] = sha256_file(self.catalog)
        d["roles_sha256"] = sha256_file(self.roles) if self.roles else None
        blob = json.dumps(d, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()


_KIND = {str: "a string", int: "an integer", float: "a number", bool: "true or false", dict: "a table"}


def _get(table: dict, key: str, kind, default, where: str, *, minimum=None, maximum=None, nonempty=False):
    v = table.get(key, default)
    if kind is float and isinstance(v, int) and not isinstance(v, bool):
        v = float(v)
    if v is not None and (not isinstance(v, kind) or isinstance(v, bool) and kind is not bool):
        raise InputError(f"{where}: {key} must be {_KIND.get(kind, kind.__name__)}, got {v!r}")
    if kind is float and v is not None and v != v:
        raise InputError(f"{where}: {key} must be a number, got nan")
    if nonempty and v is not None and not v.strip():
        raise InputError(f"{where}: {key} must not be empty")
    if minimum is not None and v is not None and v < minimum:
        raise InputError(f"{where}: {key} must be at least {minimum}, got {v!r}")
    if maximum is not None and v is not None and v > maximum:
        raise InputError(f"{where}: {key} must be at most {maximum}, got {v!r}")
    return v


def _prices(table, where: str) -> PriceTable:
    if table is not None and not isinstance(table, dict):
        raise InputError(f"{where}: [prices] must be a table of model = [5 prices], got {table!r}")
    try:
        return PriceTable.from_config(table)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None


# the most requests one experiment file may ask for (a typo of a few zeros is caught before anything is drawn)
MAX_REQUESTS = 10_000_000


def load_experiment(path, *, base_url: str | None = None, model: str | None = None,
                    out: str | None = None) -> Experiment:
    """Read and check an experiment file; ``base_url``, ``model``, ``out`` override the file's."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None
    for sec, keys in _SECTIONS.items():
        table = raw if sec == "" else raw.get(sec, {})
        if not isinstance(table, dict):
            raise InputError(f"{path}: [{sec}] must be a table")
        if unknown := set(table) - keys:
            raise InputError(f"{path}: unknown key(s) {sorted(unknown)} in [{sec or 'top level'}]; "
                             f"known: {sorted(keys)}")
    root = path.resolve().parent
    w = str(path)
    c = raw.get("contexts", {})
    if "catalog" not in c:
        raise InputError(f"{path}: [contexts] needs catalog (a JSON list of choice types)")
    if "seed" not in raw:
        raise InputError(f"{path}: seed is required (every draw of the run derives from it)")
    # every string field typed before use (a number there would reach the server or a path as it is)
    for table, key, where in ((raw, "model", w), (raw, "base_url", w), (raw, "out", w), (raw, "name", w),
                              (c, "catalog", w + " [contexts]"), (c, "roles", w + " [contexts]")):
        _get(table, key, str, None, where, nonempty=True)
    model = model or raw.get("model")
    if not model:
        raise InputError(f"{path}: model is required (or pass --model)")
    if len(model) > 256 or not model.isprintable():
        raise InputError(f"{path}: model must be a printable name of at most 256 characters, got {model[:40]!r}...")
    catalog = (root / c["catalog"]).resolve()
    roles = (root / c["roles"]).resolve() if c.get("roles") else None
    for p in (catalog, roles):
        if p is not None and not p.is_file():
            raise InputError(f"{path}: file {p} not found" + (" (it is a directory)" if p.is_dir() else ""))
    ins, ch, rep, itr, req = (raw.get(k, {}) for k in ("instill", "choices", "reports", "introspection", "requests"))
    exp = Experiment(
        name=_get(raw, "name", str, path.stem, w),
        seed=_get(raw, "seed", int, None, w, minimum=0),
        model=model,
        base_url=base_url or raw.get("base_url"),
        out=Path(out) if out else (root / raw.get("out", f"{path.stem}-out")).resolve(),
        template=load_template(raw.get("template"), where=f"{path}: template"),
        catalog=catalog, roles=roles,
        n_instilled=_get(c, "n_instilled", int, 100, w + " [contexts]", minimum=2),
        n_native=_get(c, "n_native", int, 100, w + " [contexts]", minimum=0),
        n_train=_get(ins, "n_train", int, 50, w + " [instill]", minimum=1),
        n_validation=_get(ins, "n_validation", int, 10, w + " [instill]", minimum=0),
        instill_suffix=_get(ins, "suffix", str, "instill", w + " [instill]"),
        instill_hyperparameters=_get(ins, "hyperparameters", dict, {}, w + " [instill]"),
        choices=ChoiceSpec(method=_get(ch, "method", str, "logprobs", w + " [choices]"),
                           both_orders=_get(ch, "both_orders", bool, True, w + " [choices]"),
                           top_logprobs=_get(ch, "top_logprobs", int, 10, w + " [choices]"),
                           max_tokens=_get(ch, "max_tokens", int, 1, w + " [choices]")),
        n_pairs=_get(ch, "n_pairs", int, 50, w + " [choices]", minimum=1),
        n_pairs_native=_get(ch, "n_pairs_native", int, 100, w + " [choices]", minimum=1),
        n_reports=_get(rep, "n_reports", int, 10, w + " [reports]", minimum=1),
        report_temperature=_get(rep, "temperature", float, 0.0, w + " [reports]", minimum=0.0),
        report_max_tokens=_get(rep, "max_tokens", int, 200, w + " [reports]", minimum=1),
        itrain_examples=_get(itr, "examples_per_context", int, 1, w + " [introspection]", minimum=1),
        itrain_suffix=_get(itr, "suffix", str, "itrain", w + " [introspection]"),
        itrain_hyperparameters=_get(itr, "hyperparameters", dict, {}, w + " [introspection]"),
        concurrency=_get(req, "concurrency", int, 8, w + " [requests]", minimum=1),
        max_retries=_get(req, "max_retries", int, 5, w + " [requests]", minimum=0),
        timeout=_get(req, "timeout", float, 60.0, w + " [requests]", minimum=0.001),
        batch=_get(req, "batch", bool, False, w + " [requests]"),
        poll_first=_get(req, "poll_first", float, 5.0, w + " [requests]", minimum=0.0),
        poll_max=_get(req, "poll_max", float, 120.0, w + " [requests]", minimum=0.0),
        stop_if_all_invalid=_get(req, "stop_if_all_invalid", bool, True, w + " [requests]"),
        prices=_prices(raw.get("prices"), w),
        finetune=_get(raw, "finetune", bool, True, w),
        max_usd=_get(raw, "max_usd", float, None, w, minimum=0.0),
        source=path.resolve(),
    )
    if exp.out.exists() and not exp.out.is_dir():
        raise InputError(f"{path}: out {exp.out} is a file; the output must be a directory" +
                         (" (from --out)" if out else ""))
    orders = 2 if exp.choices.both_orders else 1
    n_requests = (orders * (exp.n_instilled * exp.n_pairs + exp.n_native * exp.n_pairs_native)
                  + 5 * (exp.n_instilled + exp.n_native) * exp.n_reports)
    if n_requests > MAX_REQUESTS:
        raise InputError(f"{path}: this design asks about {n_requests:,} requests (contexts x pairs x orders, "
                         f"contexts x reports), over the limit of {MAX_REQUESTS:,}; check n_instilled, n_native, "
                         "n_pairs, n_pairs_native and n_reports")
    exp = _with_backend(exp, raw, path, root, req)
    if exp.n_train + exp.n_validation < 1 or exp.n_instilled * exp.n_train < 10:
        raise InputError(f"{path}: instillation needs at least 10 training examples "
                         f"({exp.n_instilled} contexts x {exp.n_train} pairs)")
    return exp


def _with_backend(exp: Experiment, raw: dict, path: Path, root: Path, req: dict) -> Experiment:
    """Check and attach the backend: ``openai`` (any OpenAI-compatible server) or ``local`` (selfinterp.llm.local)."""
    import dataclasses

    backend = _get(raw, "backend", str, "openai", str(path))
    if backend not in ("openai", "local"):
        raise InputError(f"{path}: backend must be \"openai\" or \"local\", got {backend!r}")
    if backend == "openai":
        if "local" in raw:
            raise InputError(f"{path}: a [local] table is given but backend is \"openai\" (set backend = \"local\")")
        return exp
    from .local.settings import check_job_hyperparameters, parse_local

    local = parse_local(raw.get("local", {}), where=str(path))
    if exp.base_url:
        raise InputError(f"{path}: base_url is for the openai backend; the local backend needs none")
    if exp.batch:
        raise InputError(f"{path}: [requests] batch = true is for OpenAI's Batch API; the local backend batches "
                         "its forward passes itself")
    if exp.report_temperature != 0:
        raise InputError(f"{path}: [reports] temperature must be 0 with the local backend (it generates greedily)")
    for sec, hp in (("instill", exp.instill_hyperparameters), ("introspection", exp.itrain_hyperparameters)):
        check_job_hyperparameters(hp, where=f"{path} [{sec}] hyperparameters")
    from .local.model import check_extra, resolve_model

    check_extra()
    # the file's model is relative to the file's folder; one given on the command line, to the working folder
    source = resolve_model(exp.model, root if exp.model == raw.get("model") else None, where=str(path))
    extra = {} if "concurrency" in req else {"concurrency": max(exp.concurrency, local.eval_batch_size)}
    return dataclasses.replace(exp, backend="local", local=dataclasses.replace(local, source=source), **extra)
