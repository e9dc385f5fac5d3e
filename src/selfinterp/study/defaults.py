"""Built-in calibration: the generative model fitted to the released GPT-4o data.

Provenance: computed on 2026-11-25 by

    selfinterp calibrate ../shared/data/plunkett2025 --model gpt-4o-2024-08-06 -o gpt4o.toml

(seed 0, 20 tiles; :func:`selfinterp.study.calibrate` with its defaults) from
the authors' released files of Plunkett et al. (2025) (fork
``jbejjani2022/self-interpretability``, commit ``1b723c6``):
``scenarios.csv``, ``instilled_weights.csv``,
``gpt-4o-2024-08-06_instilled_selections.csv``,
``gpt-4o-2024-08-06_instilled_latent_selections.csv`` and the six
``gpt-4o-2024-08-06_*weight_reports.csv``.  ``tests/test_calibrate.py``
recalibrates on those files and checks that the result equals these figures.

Moments matched (real -> simulated):

- instilled choices: agreement with the target rule 0.8256 -> 0.8259;
  r(learned, target) 0.8439 -> 0.8434; mean largest |slope| 2.200 -> 2.196;
  intercepts mean 0.024 -> 0.024, sd 0.398 -> 0.398;
- native choices: mean largest |slope| 2.725 -> 2.725; intercepts mean 0.083
  -> 0.083, sd 0.546 -> 0.546;
- reports (mean, sd within context, sd of context means, r(means, learned),
  share at +-100): base 22.06 / 12.57 / 11.51 (exact); weight-trained 16.11 ->
  16.01, 27.54 -> 27.36, 29.87 -> 29.67, 0.543 -> 0.543, 0.020 -> 0.027;
  introspection-trained 1.92 -> 1.97, 34.1 -> 34.3, 60.9 -> 61.1, 0.741 ->
  0.741, 0.272 -> 0.271; native 18.29 -> 18.25, 27.32 -> 27.26, 26.19 ->
  26.13, 0.464 -> 0.464, 0.018 -> 0.021; native after training 10.74 -> 10.59,
  36.7 -> 36.2, 57.4 -> 56.5, 0.710 -> 0.710, 0.230 -> 0.237.
"""

from __future__ import annotations

from .params import ChoiceModel, ReportModel, StudyDesign, StudyModel

__all__ = ["DEFAULT_MODEL"]

DEFAULT_MODEL = StudyModel(
    instilled=ChoiceModel(scale=0.10705474029846364, instill_sd=39.150570486622705, bias=0.11989182857850018, bias_sd=1.1017056592393373),
    native=ChoiceModel(scale=0.07647914631719592, instill_sd=0.0, bias=0.16943256966807443, bias_sd=1.1132508641869776),
    reports={
        'base': ReportModel(slope=0.0, offset=22.12707969398032, sd_context=10.82680068227069, sd_report=12.52967286958134, grid=5.0, invalid_rate=0.0),
        'instilled': ReportModel(slope=0.2582439726293828, offset=16.55401068524532, sd_context=23.239939691069196, sd_report=27.796123361487084, grid=10.0, invalid_rate=0.0),
        'itrained': ReportModel(slope=0.9162772401965712, offset=2.893223694205191, sd_context=49.369929992241744, sd_report=42.79758815636024, grid=1.0, invalid_rate=0.0),
        'native': ReportModel(slope=0.18814583733470877, offset=17.161722941796864, sd_context=21.761650727871636, sd_report=27.4614755826188, grid=10.0, invalid_rate=0.03400000000000003),
        'native_itrained': ReportModel(slope=0.7210751139229787, offset=9.913750106229799, sd_context=47.71185176257893, sd_report=43.682503860531824, grid=1.0, invalid_rate=0.0),
    },
    design=StudyDesign(contexts=100, choices=50, reports=10, attributes=5, native_contexts=100, native_choices=100, train_examples=50),
    provenance={
        "model": "gpt-4o-2024-08-06",
        "directory": "../shared/data/plunkett2025 (Plunkett et al. 2025 release, commit 1b723c6)",
        "date": "2026-11-25",
        "command": "selfinterp calibrate ../shared/data/plunkett2025 --model gpt-4o-2024-08-06 -o gpt4o.toml",
        "seed": 0, "tiles": 20,
        "notes": ["built-in defaults: see selfinterp/study/defaults.py for the moments matched"],
    },
)
