"""Parsing of scalar model parameters: one place for the error a user sees when a parameter is not a number."""

from __future__ import annotations

import numpy as np

__all__ = ["finite_number"]


def finite_number(value, name: str, where: str = "", fix: str = "") -> float:
    """float(value) for a parameter that must be a finite number (a bool is refused too); ValueError naming the
    parameter otherwise: "[where: ]name = value must be a finite number[; fix]"."""
    head = f"{where}: " if where else ""
    tail = f"; {fix}" if fix else ""
    msg = f"{head}{name} = {value!r} must be a finite number{tail}"
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(msg)
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(msg) from None
    if not np.isfinite(x):
        raise ValueError(msg)
    return x
