"""History and progress of the coupling loops: the per-iteration record (``record``, ``HISTORY_KEYS``) and
the progress lines (``Progress``, on the ``mfg_pde`` logger)."""

from __future__ import annotations

import logging
import sys
import time

import numpy as np

LOGGER = logging.getLogger("mfg_pde")

#: the quantities every coupling loop records per iteration (see ``iterate.fixed_point``)
HISTORY_KEYS = ("residual", "hjb_residual", "fp_residual", "change_m", "mass_error", "newton_max",
                "damping", "wall_time")


class Progress:
    """Progress of a loop on the ``mfg_pde`` logger (INFO): a header, then one throttled line per iteration
    (iteration, residual, HJB residual, step, mass error, inner Newton iterations, elapsed time, the loop
    that ran it), events (``note``) and the summary (``done``).  Shown when ``enabled`` (``progress=True``):
    unless the ``mfg_pde`` logger has handlers of its own, one writing to stderr is attached (and the lines
    do not propagate further); give that logger your own handler to send them elsewhere.  Quiet otherwise."""

    def __init__(self, enabled: bool, every: float = 0.25):
        self.enabled = bool(enabled)
        self.every = every
        self.last = -np.inf
        self.header = False
        if self.enabled:
            _ensure_handler()

    def _emit(self, text):
        if LOGGER.isEnabledFor(logging.INFO):
            LOGGER.info(text)
        else:  # progress asked for explicitly: show it even where the logger's level is higher
            LOGGER.log(LOGGER.getEffectiveLevel(), text)

    def __call__(self, k, rec, force=False, label=""):
        if not self.enabled:
            return
        now = rec["wall_time"]
        if not force and now - self.last < self.every and k > 3:
            return
        if not self.header:
            self._emit(f"{'iter':>5} {'residual':>10} {'hjb_res':>10} {'change_m':>10} {'mass_err':>9} "
                       f"{'newton':>6} {'elapsed':>9}")
            self.header = True
        newton = rec.get("newton_max", np.nan)
        newton = f"{int(newton):6d}" if np.isfinite(newton) else f"{'-':>6}"
        nan = np.nan
        self._emit(f"{k:5d} {rec.get('residual', nan):10.3e} {rec.get('hjb_residual', nan):10.3e} "
                   f"{rec.get('change_m', nan):10.3e} {rec.get('mass_error', nan):9.1e} {newton} {now:8.2f}s"
                   + (f"  {label}" if label else ""))
        self.last = now

    def note(self, message: str):
        """A one-line event (e.g. auto starting another loop)."""
        if self.enabled:
            self._emit(message)

    def done(self, result):
        """The result's one-line summary."""
        if self.enabled:
            self._emit(result.summary())


class _StderrHandler(logging.StreamHandler):
    """Writes to the current sys.stderr (looked up at each record, so redirections made later hold)."""

    def emit(self, record):
        self.stream = sys.stderr
        super().emit(record)


def _ensure_handler():
    if not LOGGER.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        LOGGER.addHandler(handler)
        LOGGER.propagate = False
    if LOGGER.level == logging.NOTSET or LOGGER.level > logging.INFO:
        LOGGER.setLevel(logging.INFO)


def record(history, rec, t_start):
    """Append one iteration's record to ``history`` (every key of history; nan where rec has none), with
    the wall time since t_start; returns the completed record."""
    rec = dict(rec)
    rec.setdefault("wall_time", time.perf_counter() - t_start)
    for key, values in history.items():
        if key in rec or key != "exploitability":
            values.append(float(rec.get(key, np.nan)))
    return rec
