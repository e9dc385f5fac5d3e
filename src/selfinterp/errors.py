"""Exceptions and warnings of selfinterp."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input, found before any work starts; the message names where."""


class MissingExtraError(ImportError):
    """An optional dependency is missing; the message names the extra to install."""


def require(module: str, extra: str):
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise MissingExtraError(
            f"{module!r} is needed here: pip install 'selfinterp[{extra}]'"
        ) from exc
