"""History and progress of the coupling loops: the per-iteration record (``record``, ``HISTORY_KEYS``) and
the progress lines (``Progress``, on the ``mfg_pde`` logger)."""

from __future__ import annotations

import logging
import re
import sys
import time

import numpy as np

LOGGER = logging.getLogger("mfg_pde")

#: the quantities every coupling loop records per iteration (see ``iterate.fixed_point``)
HISTORY_KEYS = ("residual", "hjb_residual", "fp_residual", "change_m", "mass_error", "newton_max",
                "damping", "wall_time")


#: iterations the ETA's linear rate is fitted on
ETA_WINDOW = 6
#: compile time (s) below which the summary line does not mention it
COMPILE_SHOWN = 0.5


def eta_seconds(residuals, times, tol, window: int = ETA_WINDOW) -> float:
    """Estimated seconds until the residual reaches ``tol``: the linear rate of the residual (least-squares
    slope of log residual against iteration over the last ``window`` + 1 iterations) gives the iterations
    still needed, times the mean wall time per iteration over those iterations.  0 when the last residual is
    at most tol; nan when it cannot be estimated (fewer than 3 finite positive residuals, or the residual is
    not decreasing).  ``times``: wall time at each iteration (same length as ``residuals``)."""
    r = np.asarray(residuals, dtype=float)[-(window + 1):]
    t = np.asarray(times, dtype=float)[-(window + 1):]
    if r.size and np.isfinite(r[-1]) and r[-1] <= tol:
        return 0.0
    ok = np.isfinite(r) & (r > 0)
    if ok.sum() < 3 or not ok[-1] or not tol > 0:
        return np.nan
    k = np.arange(r.size, dtype=float)[ok]
    slope = np.polyfit(k, np.log(r[ok]), 1)[0]
    if not slope < 0:
        return np.nan
    per_iter = (t[-1] - t[0]) / (r.size - 1)
    need = (np.log(tol) - np.log(r[-1])) / slope
    return float(need * max(per_iter, 0.0))


def format_eta(seconds: float) -> str:
    """'eta ~12s', 'eta ~3m05s', 'eta ~2h10m', 'eta <1s'; 'eta ?' where unknown (nan or infinite)."""
    if not np.isfinite(seconds):
        return "eta ?"
    s = int(round(max(seconds, 0.0)))
    if s < 1:
        return "eta <1s"
    if s < 60:
        return f"eta ~{s}s"
    if s < 3600:
        return f"eta ~{s // 60}m{s % 60:02d}s"
    return f"eta ~{s // 3600}h{(s % 3600) // 60:02d}m"


class _CompileTimer:
    """Total seconds this process spent compiling numba functions (``numba:compile`` events, which fire on
    a compilation, not on a load from the on-disk cache); registered once, on the first ``Progress``."""

    def __init__(self):
        self.total = 0.0
        self._depth = 0
        self._t0 = 0.0
        self.installed = False

    def install(self):
        if self.installed:
            return
        self.installed = True
        try:
            from numba.core import event

            timer = self

            class _Listener(event.Listener):
                def on_start(self, ev):
                    if timer._depth == 0:
                        timer._t0 = time.perf_counter()
                    timer._depth += 1

                def on_end(self, ev):
                    timer._depth -= 1
                    if timer._depth == 0:
                        timer.total += time.perf_counter() - timer._t0

            event.register("numba:compile", _Listener())
        except Exception:  # noqa: BLE001 -- a numba without the event API: compile time is not reported
            pass


_COMPILE = _CompileTimer()
_COLD_SAID = [False]  # the "compiling the numba kernels" note: once per process


def compile_seconds() -> float:
    """Seconds spent compiling numba kernels so far in this process (since the first enabled ``Progress``),
    plus the time spent waiting for the helper process compiling the forward kernels (``fd.warm``)."""
    from ..fd import warm
    return _COMPILE.total + warm.waited()


class Progress:
    """Progress of a loop on the ``mfg_pde`` logger (INFO): a header, then one throttled line per iteration
    (iteration, residual, HJB residual, step, mass error, inner iterations -- Newton per HJB step, or
    Sinkhorn sweeps in planning -- elapsed time, the ETA where ``tol`` is given, the loop that ran it),
    events (``note``) and the summary (``done``).  Every solver reports through it, in this one format.  Shown when
    ``enabled`` (``progress=True``): unless the ``mfg_pde`` logger has handlers of its own, one writing to
    stderr is attached (and the lines do not propagate further); give that logger your own handler to send
    them elsewhere.  Quiet otherwise.

    ETA (``eta_seconds``): from the linear rate of the residual towards ``tol`` over the last iterations of
    the same loop (label) times their mean wall time per iteration; "eta ?" while the residual is not
    decreasing.  First run after an installation: when the numba kernels are not in the on-disk cache yet
    (``fd.warm.cold``) a note says so once per process, and the summary line shows the seconds spent
    compiling (``compile_seconds``) apart from the wall time of the solve (``with_compile_time``)."""

    def __init__(self, enabled: bool, every: float = 0.25, tol: float | None = None):
        self.enabled = bool(enabled)
        self.every = every
        self.tol = tol
        self.last = -np.inf
        self.header = False
        self.series = {}  # label -> ([residual], [wall_time]) of every record seen (for the ETA)
        self.compile0 = 0.0
        if self.enabled:
            _ensure_handler()
            _COMPILE.install()
            self.compile0 = compile_seconds()
            self._say_cold()

    def _say_cold(self):
        if _COLD_SAID[0]:
            return
        try:
            from ..fd import warm
            is_cold = warm.cold()
        except Exception:  # noqa: BLE001 -- the note is informative only
            is_cold = False
        if is_cold:
            _COLD_SAID[0] = True
            self._emit("compiling the numba kernels (first run after installing; cached afterwards) ...")

    def eta(self, label="") -> float:
        """Estimated seconds to tol of the loop ``label`` from the records seen (nan: unknown)."""
        if self.tol is None or label not in self.series:
            return np.nan
        res, times = self.series[label]
        return eta_seconds(res, times, self.tol)

    def _emit(self, text):
        if LOGGER.isEnabledFor(logging.INFO):
            LOGGER.info(text)
        else:  # progress asked for explicitly: show it even where the logger's level is higher
            LOGGER.log(LOGGER.getEffectiveLevel(), text)

    def __call__(self, k, rec, force=False, label=""):
        if not self.enabled:
            return
        now = rec["wall_time"]
        res, times = self.series.setdefault(label, ([], []))
        res.append(float(rec.get("residual", np.nan)))
        times.append(float(now))
        if not force and now - self.last < self.every and k > 3:
            return
        if not self.header:
            self._emit(f"{'iter':>5} {'residual':>10} {'hjb_res':>10} {'change_m':>10} {'mass_err':>9} "
                       f"{'inner':>6} {'elapsed':>9}")
            self.header = True
        newton = rec.get("newton_max", np.nan)
        newton = f"{int(newton):6d}" if np.isfinite(newton) else f"{'-':>6}"
        nan = np.nan
        self._emit(f"{k:5d} {rec.get('residual', nan):10.3e} {rec.get('hjb_residual', nan):10.3e} "
                   f"{rec.get('change_m', nan):10.3e} {rec.get('mass_error', nan):9.1e} {newton} {now:8.2f}s"
                   + (f"  {format_eta(self.eta(label))}" if self.tol is not None else "")
                   + (f"  {label}" if label else ""))
        self.last = now

    def note(self, message: str):
        """A one-line event (e.g. auto starting another loop)."""
        if self.enabled:
            self._emit(message)

    def done(self, result):
        """The result's summary line; where the solve spent time compiling numba kernels (the first run after
        an installation) its "wall time W s" shows the solve time without them, followed by
        "+ C s compiling the numba kernels (...)" (the result's history keeps the wall time as measured)."""
        if self.enabled:
            self._emit(with_compile_time(result.summary(), compile_seconds() - self.compile0))


_WALL = re.compile(r"wall time (\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|nan|inf) s")


def with_compile_time(line: str, compiled: float) -> str:
    """A summary line with the compile seconds shown apart: "wall time W s" becomes
    "wall time W - C s + C s compiling the numba kernels (first run only, cached for the next runs)"
    (W - C at least 0); a line without a wall time gets "(+ C s compiling ...)" at its end.  As it is
    when compiled < ``COMPILE_SHOWN``."""
    if not compiled >= COMPILE_SHOWN:
        return line
    note = f"{compiled:.1f} s compiling the numba kernels (first run only, cached for the next runs)"
    match = _WALL.search(line)
    if match is None:
        return f"{line} (+ {note})"
    wall = float(match.group(1))
    digits = len(match.group(1).split(".")[1]) if "." in match.group(1) else 3
    shown = f"{max(wall - compiled, 0.0):.{digits}f}" if np.isfinite(wall) else match.group(1)
    return f"{line[:match.start()]}wall time {shown} s + {note}{line[match.end():]}"


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


def stop_status(k: int, n: int, rec: dict, best: float, divergence_factor: float, callback) -> str | None:
    """The stop rules of the coupling loops after an iteration that neither converged nor went non-finite:
    divergence (after 5 iterations, the residual above divergence_factor times the best so far), or the
    callback (called as callback(n, rec), n the record's number) asking to stop.  None: go on."""
    if rec["residual"] > divergence_factor * best and k > 5:
        return f"diverged: residual grew from {best:.3e} to {rec['residual']:.3e} at iteration {k}"
    if callback is not None and callback(n, rec):
        return f"stopped by callback at iteration {k}"
    return None


def max_iter_status(max_iter: int, history: dict, tol: float) -> str:
    """The status of a coupling loop that used up max_iter: its last residuals against tol."""
    return (f"not converged: max_iter = {max_iter} reached with residual {history['residual'][-1]:.3e}, "
            f"hjb_residual {history['hjb_residual'][-1]:.3e} (tol {tol:.1e})")
