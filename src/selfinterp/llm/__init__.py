"""The LLM layer: run self-interpretability experiments against OpenAI-compatible servers.

Prompt templates (:mod:`.prompts`), fine-tuning data (:mod:`.finetune_data`),
jobs (:mod:`.jobs`), elicitation (:mod:`.elicit`, :mod:`.parse`), the request
cache (:mod:`.cache`), the Batch API (:mod:`.batch`), cost accounting
(:mod:`.pricing`) and the whole pipeline (:mod:`.pipeline`, ``selfinterp run``).
Importing it does not import ``openai``; the client is made when a run starts.
"""

from .cache import CacheVersionError, RequestCache, request_key
from .client import LLMError
from .config import Experiment, load_experiment
from .elicit import ChoiceSpec, choice_bodies, read_choices, read_reports, report_bodies
from .finetune_data import (introspection_examples, preference_examples, two_fold, validate_examples,
                            write_jsonl)
from .parse import choice_probabilities, parse_choice, parse_report
from .pipeline import ExperimentRun
from .pricing import PriceTable
from .prompts import PAPER, PromptTemplate, load_template

__all__ = ["CacheVersionError", "RequestCache", "request_key", "LLMError", "Experiment", "load_experiment",
           "ChoiceSpec", "choice_bodies", "read_choices", "read_reports", "report_bodies",
           "introspection_examples", "preference_examples", "two_fold", "validate_examples", "write_jsonl",
           "choice_probabilities", "parse_choice", "parse_report", "ExperimentRun", "PriceTable", "PAPER",
           "PromptTemplate", "load_template"]
