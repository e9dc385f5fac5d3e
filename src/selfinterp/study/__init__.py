"""Study simulator, calibration, power analysis and API budget planner.

- :mod:`.params`: the generative model's parameters and the calibration file format;
- :mod:`.model`: its array-level pieces (targets, effective weights, choices, reports);
- :mod:`.calibration`: estimating the parameters from transcripts in the released layout;
- :mod:`.simulate`: one whole study as transcripts in the released layout;
- :mod:`.coverage`: coverage of `replicate`'s intervals across simulated studies;
- :mod:`.power`: the Monte-Carlo sweep over designs (one process or a dask cluster);
- :mod:`.budget`: API calls, tokens and dollars of a design;
- :mod:`.defaults`: the built-in calibration on the released GPT-4o data.
"""

from .budget import PriceTable, design_cost, load_prices
from .calibration import calibrate
from .defaults import DEFAULT_MODEL
from .params import (CONDITIONS, ChoiceModel, ReportModel, StudyDesign, StudyModel, load_calibration,
                     save_calibration)
from .power import Design, cheapest, design_grid, local_cluster, run_design, sweep
from .simulate import simulate_study

__all__ = [
    "ChoiceModel", "ReportModel", "StudyDesign", "StudyModel", "CONDITIONS", "DEFAULT_MODEL",
    "load_calibration", "save_calibration", "calibrate", "Design", "design_grid", "run_design",
    "sweep", "local_cluster", "cheapest", "PriceTable", "load_prices", "design_cost", "simulate_study",
]
