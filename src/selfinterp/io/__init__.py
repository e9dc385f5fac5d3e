"""Readers and writers of transcripts: the paper's released layout, the toolkit's JSON lines
and long-format tables of your own (CSV, Parquet, JSON lines; :mod:`selfinterp.io.table`).

Both load into the Datasets of :mod:`selfinterp.labelled` (choices over
context, trial, attribute) and a reports Dataset over (context, report,
attribute), so one estimator and one scorer serve simulated agents and real
models alike.
"""

from .released import (
    ReleasedData,
    align_reports,
    read_regression,
    read_released,
    read_reports,
    read_scenarios,
    read_selections,
    read_target_weights,
    reports_dataset,
    scenarios_dataset,
    scenarios_from_contexts,
    selections_dataset,
    write_released,
)
from .table import Columns, read_choices_table, read_reports_table, read_study_file, read_study_tables
from .transcript import Transcript, read_records, read_transcript, to_records, write_transcript

__all__ = [
    "ReleasedData", "read_released", "write_released", "read_scenarios", "read_target_weights",
    "read_selections", "read_reports", "read_regression", "align_reports", "scenarios_dataset",
    "reports_dataset", "selections_dataset", "scenarios_from_contexts", "Transcript", "read_transcript", "read_records", "write_transcript", "to_records",
    "Columns", "read_choices_table", "read_reports_table", "read_study_tables", "read_study_file",
]
