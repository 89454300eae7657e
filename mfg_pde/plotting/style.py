"""Figure style: size, resolution, font size, colour map, colour scale and units (:class:`Style`).

Every plotting function takes ``style=`` (a :class:`Style`) and the same fields as keyword arguments
(``plot_result(r, dpi=200, cmap="magma")``); keywords override the fields of ``style``.  Bad values raise
:class:`StyleError` (a ``ValueError``) naming the parameter, the value and what is accepted.

matplotlib is imported only where a colour map is checked or a norm is made, so importing this module
stays cheap.
"""

from __future__ import annotations

import contextlib
import difflib
import math
from dataclasses import dataclass, fields, replace

__all__ = ["SCALES", "Style", "StyleError", "parse_figsize"]

#: colour scales of density images (``Style.scale``)
SCALES = ("linear", "log", "sqrt")

#: a few colour maps named in error messages (all of ``matplotlib.colormaps`` are accepted)
_SUGGESTED_CMAPS = ("viridis", "magma", "plasma", "inferno", "cividis", "Greys", "Blues", "turbo")


class StyleError(ValueError):
    """A bad style option.  ``param`` names it (``"cmap"``, ``"scale"``, ``"figsize"``, ...), ``value`` is what
    was given and ``reason`` says what is accepted; ``str()`` is ``"param=value: reason"``."""

    def __init__(self, param: str, value, reason: str):
        self.param, self.value, self.reason = param, value, reason
        super().__init__(f"{param}={value!r}: {reason}")


def _positive(name: str, value, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool):
        raise StyleError(name, value, "expected a positive number")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise StyleError(name, value, "expected a positive number") from None
    if not (math.isfinite(v) and v > 0):
        raise StyleError(name, value, "expected a positive, finite number")
    return v


def parse_figsize(value) -> tuple | None:
    """``(width, height)`` in inches from a pair of numbers or a string ``"8,4"`` / ``"8x4"``; None stays None.
    Raises StyleError naming ``figsize`` for anything else (one number, three numbers, words, zero or negative
    sizes)."""
    if value is None:
        return None
    hint = "expected WIDTH,HEIGHT in inches, two positive numbers such as 8,4"
    if isinstance(value, str):
        parts = [p.strip() for p in value.replace("x", ",").replace("X", ",").split(",")]
    else:
        try:
            parts = list(value)
        except TypeError:
            raise StyleError("figsize", value, hint) from None
    if len(parts) != 2:
        raise StyleError("figsize", value, hint)
    try:
        w, h = (float(p) for p in parts)
    except (TypeError, ValueError):
        raise StyleError("figsize", value, hint) from None
    if not all(math.isfinite(v) and v > 0 for v in (w, h)):
        raise StyleError("figsize", value, hint)
    if max(w, h) > 200:
        raise StyleError("figsize", value, "at most 200 inches a side")
    return (w, h)


def _check_cmap(name: str, value):
    import matplotlib

    if isinstance(value, matplotlib.colors.Colormap):
        return value
    if not isinstance(value, str) or value not in matplotlib.colormaps:
        known = list(matplotlib.colormaps)
        close = difflib.get_close_matches(str(value), known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise StyleError(name, value, f"unknown colour map; {hint}valid names include "
                         f"{', '.join(_SUGGESTED_CMAPS)} (all {len(known)}: matplotlib.colormaps)")
    return value


@dataclass(frozen=True)
class Style:
    """How a figure looks.

    figsize : (width, height) in inches, or None for the figure's own size (the dashboard sizes its panels from
        the domain's aspect ratio).  Saved files are exactly ``figsize * dpi`` pixels (no tight bounding box).
    dpi : resolution of saved files (and of the figure), dots per inch.
    font_size : base font size in points (titles, labels, ticks and legends scale with it); None keeps
        matplotlib's default (10).
    cmap : colour map of density images (a name from ``matplotlib.colormaps`` or a Colormap).
    value_cmap : colour map of value-function (u) images.
    scale : colour scale of density images, "linear", "log" (from ``log_floor`` times the maximum) or "sqrt"
        (a power norm with exponent 1/2: thin crowds stay visible next to a peak); 1-D density lines use the
        same scale on their y axis.  None (the default): "sqrt" for images of the density over (x, y), "linear"
        for 1-D lines and (t, x) images.  Colour bars name a scale that is not linear.
    log_floor : with ``scale="log"``, the lowest density shown, as a fraction of the maximum.
    units : symbol -> unit, e.g. ``{"x": "m", "y": "m", "t": "s"}``; axis labels then read ``x [m]``.  Symbols
        without a unit get a bare label (never ``[1]``).  A result whose ``params`` hold a ``units`` dict
        supplies defaults.
    """

    figsize: tuple | None = None
    dpi: float = 120.0
    font_size: float | None = None
    cmap: object = "viridis"
    value_cmap: object = "magma"
    scale: str | None = None
    log_floor: float = 1e-6
    units: dict | None = None

    def __post_init__(self):
        object.__setattr__(self, "figsize", parse_figsize(self.figsize))
        object.__setattr__(self, "dpi", _positive("dpi", self.dpi))
        if self.dpi > 2400:
            raise StyleError("dpi", self.dpi, "at most 2400 dots per inch")
        object.__setattr__(self, "font_size", _positive("font_size", self.font_size, allow_none=True))
        _check_cmap("cmap", self.cmap)
        _check_cmap("value_cmap", self.value_cmap)
        if self.scale is not None and self.scale not in SCALES:
            raise StyleError("scale", self.scale, f"unknown colour scale; choose one of {', '.join(SCALES)}")
        floor = _positive("log_floor", self.log_floor)
        if floor >= 1:
            raise StyleError("log_floor", self.log_floor, "expected a fraction of the maximum below 1, e.g. 1e-6")
        if self.units is not None:
            if not isinstance(self.units, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                           for k, v in self.units.items()):
                raise StyleError("units", self.units, "expected a dict of symbol -> unit strings, e.g. {'x': 'm'}")

    @classmethod
    def coerce(cls, style=None, **overrides) -> "Style":
        """A Style from ``style`` (a Style, a dict of fields or None) with ``overrides`` applied.  An unknown
        keyword is a TypeError naming it (and the closest field)."""
        names = [f.name for f in fields(cls)]
        for key in overrides:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise TypeError(f"unknown style option {key!r}{hint}; style options: {', '.join(names)}")
        if style is None:
            base = cls()
        elif isinstance(style, cls):
            base = style
        elif isinstance(style, dict):
            return cls.coerce(None, **{**style, **overrides})
        else:
            raise TypeError(f"style={style!r}: expected a mfg_pde.plotting.Style, a dict of its fields or None")
        return replace(base, **overrides) if overrides else base

    # ------------------------------------------------------------------ helpers for the panels
    @contextlib.contextmanager
    def context(self):
        """matplotlib rc settings of this style (the font size) while a figure is built."""
        import matplotlib

        rc = {"font.size": self.font_size} if self.font_size else {}
        with matplotlib.rc_context(rc):
            yield

    def apply(self, *axes) -> None:
        """Set the font size on axes drawn outside :meth:`context` too: tick labels (made when the figure is drawn)
        and axis labels (made with the axes)."""
        if not self.font_size:
            return
        for ax in axes:
            ax.tick_params(labelsize=self.font_size)
            ax.xaxis.label.set_size(self.font_size)
            ax.yaxis.label.set_size(self.font_size)

    def with_units(self, params) -> "Style":
        """This style, with the units of ``params["units"]`` (a result's parameters) where it has none."""
        given = params.get("units") if isinstance(params, dict) else None
        if not isinstance(given, dict):
            return self
        merged = {str(k): str(v) for k, v in given.items() if v not in (None, "", "1")}
        merged.update(self.units or {})
        return replace(self, units=merged)

    def label(self, symbol: str, text: str | None = None) -> str:
        """Axis label for a quantity: ``text`` (default the symbol) with `` [unit]`` when the symbol has a unit."""
        unit = (self.units or {}).get(symbol)
        text = symbol if text is None else text
        return f"{text} [{unit}]" if unit and unit != "1" else text

    def colormap(self, which: str = "density"):
        """The Colormap for density ("density") or value ("value") images; values below the colour scale's
        lower end (log scale) take its lowest colour rather than none."""
        import matplotlib

        cmap = self.cmap if which == "density" else self.value_cmap
        cmap = matplotlib.colormaps[cmap] if isinstance(cmap, str) else cmap
        return cmap.with_extremes(under=cmap(0.0), bad=cmap(0.0))

    def scale_for(self, plane: bool = False) -> str:
        """The density scale in use: ``scale``, or without one "sqrt" for (x, y) images (``plane``), else
        "linear"."""
        return self.scale or ("sqrt" if plane else "linear")

    def norm(self, vmax: float, vmin: float = 0.0, plane: bool = False):
        """The colour norm of density images on this scale (``scale_for(plane)``), from ``vmin`` (linear) or 0
        (sqrt) or ``log_floor * vmax`` (log) to ``vmax``."""
        from matplotlib.colors import LogNorm, Normalize, PowerNorm

        vmax = float(vmax) if vmax and math.isfinite(vmax) and vmax > 0 else 1.0
        scale = self.scale_for(plane)
        if scale == "log":
            return LogNorm(vmin=vmax * self.log_floor, vmax=vmax, clip=True)
        if scale == "sqrt":
            return PowerNorm(0.5, vmin=0.0, vmax=vmax)
        return Normalize(vmin=min(vmin, 0.0), vmax=vmax)

    def scale_label(self, text: str, plane: bool = False) -> str:
        """``text`` with the colour scale named when it is not linear, e.g. ``m (sqrt scale)``."""
        scale = self.scale_for(plane)
        return text if scale == "linear" else f"{text} ({scale} scale)"
