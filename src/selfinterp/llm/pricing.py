"""Cost accounting from the usage the server returns.

Prices are US dollars per million tokens.  The table is versioned and its
version goes into the run manifest; an experiment file can override or extend
it (``[prices]``), and a model missing from the table is counted in tokens with
its cost reported as unknown, never as zero.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError

__all__ = ["PriceTable", "DEFAULT_PRICES", "PRICE_TABLE_VERSION"]

PRICE_TABLE_VERSION = "openai-2025-06"
# model family -> (input, output, fine-tuned input, fine-tuned output, training), $ per 1M tokens,
# from OpenAI's pricing page as of June 2025; the Batch API halves the inference prices
DEFAULT_PRICES = {
    "gpt-4.1": (2.00, 8.00, 3.00, 12.00, 25.00),
    "gpt-4.1-mini": (0.40, 1.60, 0.80, 3.20, 5.00),
    "gpt-4.1-nano": (0.10, 0.40, 0.20, 0.80, 1.50),
    "gpt-4o": (2.50, 10.00, 3.75, 15.00, 25.00),
    "gpt-4o-mini": (0.15, 0.60, 0.30, 1.20, 3.00),
}
BATCH_DISCOUNT = 0.5


@dataclass(frozen=True)
class PriceTable:
    prices: dict
    version: str = PRICE_TABLE_VERSION

    @classmethod
    def from_config(cls, overrides: dict | None) -> "PriceTable":
        table = dict(DEFAULT_PRICES)
        if overrides:
            for model, p in overrides.items():
                if not (isinstance(p, list) and len(p) == 5 and all(isinstance(x, (int, float)) and x >= 0 for x in p)):
                    raise InputError(f"[prices] {model}: expected 5 non-negative numbers "
                                     "(input, output, fine-tuned input, fine-tuned output, training) per 1M tokens")
                table[model] = tuple(float(x) for x in p)
            return cls(table, f"{PRICE_TABLE_VERSION}+custom")
        return cls(table)

    def family(self, model: str) -> tuple[str | None, bool]:
        """(priced family, fine-tuned?) of a model name such as ``ft:gpt-4.1-mini-2025-04-14:org::id``."""
        tuned = model.startswith("ft:")
        name = model.split(":")[1] if tuned else model
        best = None
        for fam in self.prices:
            # the longest family name that prefixes the model, so gpt-4.1-mini is not priced as gpt-4.1
            if (name == fam or name.startswith(fam + "-")) and (best is None or len(fam) > len(best)):
                best = fam
        return best, tuned

    def inference_cost(self, model: str, prompt_tokens: int, completion_tokens: int, *, batch: bool) -> float | None:
        fam, tuned = self.family(model)
        if fam is None:
            return None
        p = self.prices[fam]
        pin, pout = (p[2], p[3]) if tuned else (p[0], p[1])
        cost = (prompt_tokens * pin + completion_tokens * pout) / 1e6
        return cost * (BATCH_DISCOUNT if batch else 1.0)

    def training_cost(self, model: str, trained_tokens: int) -> float | None:
        fam, _ = self.family(model)
        return None if fam is None else trained_tokens * self.prices[fam][4] / 1e6
