"""Built-in calibration: the generative model fitted to the released GPT-4o data.

PROVISIONAL
"""

from __future__ import annotations

from .params import ChoiceModel, ReportModel, StudyDesign, StudyModel

__all__ = ["DEFAULT_MODEL"]

DEFAULT_MODEL = StudyModel(
    instilled=ChoiceModel(scale=0.107, instill_sd=38.8, bias=0.0, bias_sd=1.05),
    native=ChoiceModel(scale=0.1, instill_sd=0.0, bias=0.0, bias_sd=1.0),
    reports={
        "base": ReportModel(slope=0.0, offset=22.0, sd_context=10.0, sd_report=12.0, grid=5.0, invalid_rate=0.0),
        "instilled": ReportModel(slope=0.3, offset=16.0, sd_context=20.0, sd_report=27.0, grid=10.0, invalid_rate=0.0),
        "itrained": ReportModel(slope=0.8, offset=2.0, sd_context=30.0, sd_report=34.0, grid=1.0, invalid_rate=0.0),
        "native": ReportModel(slope=0.3, offset=16.0, sd_context=20.0, sd_report=27.0, grid=10.0, invalid_rate=0.034),
        "native_itrained": ReportModel(slope=0.8, offset=2.0, sd_context=30.0, sd_report=34.0, grid=1.0, invalid_rate=0.0),
    },
    design=StudyDesign(),
    provenance={},
)
