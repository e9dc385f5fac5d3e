"""Parameters of the generative model of a self-report study, and their file format.

A study has two parts that are modelled separately:

- **choices** (:class:`ChoiceModel`): the fine-tuned model's effective weights
  are the target weights plus Gaussian noise of sd ``instill_sd`` (instillation
  fidelity); it chooses A with probability
  ``sigmoid(scale * (x_A - x_B) @ w_eff + bias_c)``, where ``bias_c`` is a
  per-context position bias (logits) drawn from normal(``bias``, ``bias_sd``);
- **reports** (:class:`ReportModel`, one per condition): a report of attribute
  k in context c is ``offset + slope * w~_ck + u_ck + e_rck``, where ``w~`` are
  the effective weights rescaled to max |w| = 100, ``u_ck`` ~ normal(0,
  ``sd_context``) is shared by the R reports of the context (what averaging
  cannot remove) and ``e_rck`` ~ normal(0, ``sd_report``) is each report's own
  noise; it is rounded to a multiple of ``grid`` and clipped to [-100, 100]; a
  share ``invalid_rate`` of the replies is invalid (dropped, as in the released
  files).

The conditions are the paper's: ``base`` (the untrained model, slope 0: its
reports carry no information about the instilled weights), ``instilled`` (the
weight-trained model), ``itrained`` (after introspection training, on held-out
contexts), ``native`` and ``native_itrained`` (reports on never-trained contexts
before and after introspection training).

Calibration files are small TOML files (:func:`save_calibration`,
:func:`load_calibration`) with a format name and a version; a file of another
version or with a missing field is refused with an error naming the field.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import tomli_w

from ..errors import InputError

__all__ = ["ChoiceModel", "ReportModel", "StudyDesign", "StudyModel", "CONDITIONS",
           "CALIBRATION_FORMAT", "CALIBRATION_VERSION", "save_calibration", "load_calibration"]

CALIBRATION_FORMAT = "selfinterp-study-calibration"
CALIBRATION_VERSION = 1
CONDITIONS = ("base", "instilled", "itrained", "native", "native_itrained")


def _check(name: str, value, *, lo=None, hi=None, lo_open=False, integer=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise InputError(f"{name} must be finite, got {value!r}")
    if integer and int(value) != value:
        raise InputError(f"{name} must be an integer, got {value!r}")
    if lo is not None and (value <= lo if lo_open else value < lo):
        raise InputError(f"{name} must be {'>' if lo_open else '>='} {lo}, got {value!r}")
    if hi is not None and value > hi:
        raise InputError(f"{name} must be <= {hi}, got {value!r}")


@dataclass(frozen=True)
class ChoiceModel:
    """How a fine-tuned model turns option pairs into choices.

    Attributes
    ----------
    scale : float
        Logit scale per unit of weight (weights live on the targets' scale,
        max |w| = 100), > 0.
    instill_sd : float
        Sd of effective minus target weights, in weight units (0 = perfect
        instillation; for native contexts the "targets" are the model's own
        weights and this is 0).
    bias : float
        Mean position bias towards option A, in logits.
    bias_sd : float
        Sd across contexts of the position bias, in logits.
    """

    scale: float
    instill_sd: float
    bias: float
    bias_sd: float

    def __post_init__(self):
        _check("scale", self.scale, lo=0, lo_open=True)
        _check("instill_sd", self.instill_sd, lo=0)
        _check("bias", self.bias)
        _check("bias_sd", self.bias_sd, lo=0)


@dataclass(frozen=True)
class ReportModel:
    """How a model's self-reports relate to its effective weights (one condition).

    Attributes
    ----------
    slope, offset : float
        Report = offset + slope * (effective weight rescaled to max |w| = 100) + noise.
    sd_context : float
        Sd of the noise shared by all reports of one (context, attribute).
    sd_report : float
        Sd of each report's own noise (averaging over R reports divides its
        variance by R).
    grid : float
        Reports are rounded to multiples of ``grid`` (10 for GPT-4o), > 0.
    invalid_rate : float
        Probability that a reply is invalid (no report), in [0, 1).
    """

    slope: float
    offset: float
    sd_context: float
    sd_report: float
    grid: float
    invalid_rate: float

    def __post_init__(self):
        _check("slope", self.slope)
        _check("offset", self.offset)
        _check("sd_context", self.sd_context, lo=0)
        _check("sd_report", self.sd_report, lo=0)
        _check("grid", self.grid, lo=0, lo_open=True, hi=200)
        _check("invalid_rate", self.invalid_rate, lo=0)
        if not self.invalid_rate < 1:
            raise InputError(f"invalid_rate must be < 1, got {self.invalid_rate!r}")

    def single_report_r(self, weight_sd: float) -> float:
        """Population r between one (unrounded) report and the rescaled effective weight.

        ``weight_sd`` is the sd of the rescaled effective weights
        (:func:`selfinterp.study.model.weight_sd`).
        """
        signal = (self.slope * weight_sd) ** 2
        total = signal + self.sd_context**2 + self.sd_report**2
        return math.copysign(math.sqrt(signal / total), self.slope) if total > 0 else 0.0

    def with_single_report_r(self, r: float, weight_sd: float) -> "ReportModel":
        """The same model with both noise sds scaled so that :meth:`single_report_r` is ``r``."""
        _check("single-report r", r, lo=0, lo_open=True)
        if not r < 1:
            raise InputError(f"a single-report correlation must be < 1, got {r!r}")
        if self.slope == 0:
            raise InputError("cannot set the accuracy of reports whose slope is 0")
        noise2 = self.sd_context**2 + self.sd_report**2
        if noise2 == 0:
            raise InputError("cannot set the accuracy of noiseless reports")
        want = (self.slope * weight_sd) ** 2 * (1.0 / r**2 - 1.0)
        c = math.sqrt(want / noise2)
        return replace(self, sd_context=self.sd_context * c, sd_report=self.sd_report * c)


@dataclass(frozen=True)
class StudyDesign:
    """Sizes of one study (the paper's by default).

    Attributes
    ----------
    contexts : int
        Instilled decision contexts (split in two halves for introspection training).
    choices : int
        Test choices per instilled context.
    reports : int
        Self-report calls per context and condition.
    attributes : int
        Attributes per context.
    native_contexts, native_choices : int
        Never-trained contexts of the native-preference experiment and choices on each.
    train_examples : int
        Preference-instillation training examples per context (cost only).
    """

    contexts: int = 100
    choices: int = 50
    reports: int = 10
    attributes: int = 5
    native_contexts: int = 100
    native_choices: int = 100
    train_examples: int = 50

    def __post_init__(self):
        for f in fields(self):
            _check(f.name, getattr(self, f.name), lo=1, integer=True)
        if self.contexts < 2:
            raise InputError(f"contexts must be at least 2 (introspection training uses two "
                             f"halves), got {self.contexts}")
        if self.attributes < 2:
            raise InputError(f"attributes must be at least 2 (a pooled correlation needs "
                             f"variation within a context), got {self.attributes}")


@dataclass(frozen=True)
class StudyModel:
    """The whole generative model: choices (instilled, native) and reports per condition."""

    instilled: ChoiceModel
    native: ChoiceModel
    reports: dict = field(default_factory=dict)
    design: StudyDesign = field(default_factory=StudyDesign)
    provenance: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        missing = [c for c in CONDITIONS if c not in self.reports]
        if missing:
            raise InputError(f"report models missing for condition(s) {missing}")
        unknown = [c for c in self.reports if c not in CONDITIONS]
        if unknown:
            raise InputError(f"unknown report condition(s) {unknown}; known: {list(CONDITIONS)}")
        if self.reports["base"].slope != 0:
            raise InputError("the base model's reports carry no information: its slope must be 0")

    def to_dict(self) -> dict:
        return {
            "format": CALIBRATION_FORMAT,
            "version": CALIBRATION_VERSION,
            "provenance": dict(self.provenance),
            "design": asdict(self.design),
            "choices": {"instilled": asdict(self.instilled), "native": asdict(self.native)},
            "reports": {c: asdict(self.reports[c]) for c in CONDITIONS},
        }

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "calibration") -> "StudyModel":
        if data.get("format") != CALIBRATION_FORMAT:
            raise InputError(f"{source}: not a selfinterp calibration file (format = "
                             f"{data.get('format')!r}, expected {CALIBRATION_FORMAT!r})")
        if data.get("version") != CALIBRATION_VERSION:
            raise InputError(f"{source}: calibration file version {data.get('version')!r}; this "
                             f"selfinterp reads version {CALIBRATION_VERSION}: recalibrate with "
                             f"`selfinterp calibrate`")

        def section(path, klass):
            node = data
            for p in path:
                if not isinstance(node, dict) or p not in node:
                    raise InputError(f"{source}: missing section [{'.'.join(path)}]")
                node = node[p]
            names = [f.name for f in fields(klass)]
            missing = [n for n in names if n not in node]
            if missing:
                raise InputError(f"{source}: [{'.'.join(path)}] lacks field(s) {missing}")
            extra = [n for n in node if n not in names]
            if extra:
                raise InputError(f"{source}: [{'.'.join(path)}] has unknown field(s) {extra}")
            try:
                return klass(**node)
            except InputError as exc:
                raise InputError(f"{source}: [{'.'.join(path)}] {exc}") from None

        return cls(
            instilled=section(("choices", "instilled"), ChoiceModel),
            native=section(("choices", "native"), ChoiceModel),
            reports={c: section(("reports", c), ReportModel) for c in CONDITIONS},
            design=section(("design",), StudyDesign),
            provenance=dict(data.get("provenance", {})),
        )


def _checked(v, where: str):
    """``v`` with every value one TOML can hold exactly; else an InputError naming the field."""
    if isinstance(v, dict):
        return {k: _checked(x, f"{where}.{k}" if where else k) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_checked(x, where) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        raise InputError(f"cannot write a non-finite value ({v!r}) to a calibration file ({where})")
    if not isinstance(v, (bool, int, float, str)):
        raise InputError(f"cannot write {type(v).__name__} values to a calibration file ({where})")
    return v


def save_calibration(model: StudyModel, path) -> Path:
    """Write ``model`` to ``path`` as a versioned TOML calibration file."""
    path = Path(path)
    text = "# selfinterp study calibration (read by `selfinterp study/power --calibration`)\n"
    text += tomli_w.dumps(_checked(model.to_dict(), ""))
    path.write_text(text, encoding="utf-8")
    return path


def load_calibration(path) -> StudyModel:
    """Read a calibration file; a wrong format, version or a missing field is an InputError."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"calibration file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable TOML calibration file: {exc}") from None
    return StudyModel.from_dict(data, source=str(path))
