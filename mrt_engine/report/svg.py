"""Inline SVG: the J line charts and the progress colours. Strings out, no dependencies."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape
from typing import Sequence

# Diverging colours for progress: J fell (red) .. no change (grey) .. J rose (green).
NEGATIVE = (215, 48, 39)
NEUTRAL = (247, 247, 247)
POSITIVE = (26, 152, 80)

WIDTH, HEIGHT = 420, 220
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 70, 14, 12, 38


def progress_colour(progress: float, scale: float) -> str:
    """CSS colour of an episode with this progress, ``scale`` being the |progress| at full colour."""
    t = max(-1.0, min(1.0, progress / scale)) if scale > 0 else 0.0
    end = POSITIVE if t >= 0 else NEGATIVE
    rgb = [round(n + (e - n) * abs(t)) for n, e in zip(NEUTRAL, end)]
    return f"rgb({rgb[0]},{rgb[1]},{rgb[2]})"


def nice_top(value: float) -> float:
    """Top of the y axis: 1 for J curves that reach 0.5, else the next 1/2/5 x 10^k (score-mode
    J of a small model can be 1e-6; on a [0, 1] axis every curve would be a flat line)."""
    if value >= 0.5 or value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for m in (1, 2, 5, 10):
        if m * power >= value:
            return m * power
    return 1.0


def fmt(x: float | None) -> str:
    """Short display of a J, regret or progress value (tiny score-mode values in e-notation)."""
    if x is None:
        return "–"
    if x == 0 or abs(x) >= 0.01:
        return f"{x:.3f}"
    return f"{x:.2e}"


@dataclass
class Chart:
    """One line chart: points (x, y), a label per point, point colours, vertical marks."""

    xs: Sequence[float]
    ys: Sequence[float]
    x_label: str
    y_label: str
    point_titles: Sequence[str] = ()
    point_colours: Sequence[str] = ()
    marks: dict[float, str] = field(default_factory=dict)  # x -> label (token budgets)
    css_class: str = "chart"
    integer_x: bool = False  # episode counts: ticks at whole numbers only


def _ticks(top: float, num: int = 4, *, integer: bool = False) -> list[float]:
    if integer:
        step = max(1, math.ceil(top / num))
        return [float(k) for k in range(0, int(top) + 1, step)]
    return [top * k / num for k in range(num + 1)]


def render(chart: Chart) -> str:
    """The chart as an ``<svg>`` element (no xmlns needed inline in HTML5)."""
    x_max = max([*chart.xs, *chart.marks, 1e-12])
    y_top = nice_top(max(chart.ys, default=0.0))
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM

    def px(x: float) -> float:
        return MARGIN_LEFT + plot_w * x / x_max

    def py(y: float) -> float:
        return MARGIN_TOP + plot_h * (1 - min(y, y_top) / y_top)

    out = [f'<svg class="{chart.css_class}" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
           f'role="img" aria-label="{escape(chart.y_label)} over {escape(chart.x_label)}">']
    for y in _ticks(y_top):
        out.append(f'<line class="grid" x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" y1="{py(y):.1f}" y2="{py(y):.1f}"/>')
        out.append(f'<text class="tick" x="{MARGIN_LEFT - 4}" y="{py(y) + 4:.1f}" text-anchor="end">{y:.3g}</text>')
    for x in _ticks(x_max, integer=chart.integer_x):
        out.append(f'<text class="tick" x="{px(x):.1f}" y="{HEIGHT - MARGIN_BOTTOM + 14}" text-anchor="middle">'
                   f'{x:.4g}</text>')
    for x, label in sorted(chart.marks.items()):
        out.append(f'<line class="mark" x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{MARGIN_TOP}" '
                   f'y2="{HEIGHT - MARGIN_BOTTOM}"><title>budget {escape(label)}</title></line>')
    out.append(f'<text class="axis" x="{MARGIN_LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle">'
               f'{escape(chart.x_label)}</text>')
    out.append(f'<text class="axis" x="14" y="{MARGIN_TOP + plot_h / 2:.1f}" text-anchor="middle">'
               f'{escape(chart.y_label)}</text>')
    points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(chart.xs, chart.ys))
    out.append(f'<polyline class="line" points="{points}"/>')
    for k, (x, y) in enumerate(zip(chart.xs, chart.ys)):
        colour = chart.point_colours[k] if k < len(chart.point_colours) else ""
        style = f' style="fill:{colour}"' if colour else ""
        title = chart.point_titles[k] if k < len(chart.point_titles) else f"{x:g}, {fmt(y)}"
        out.append(f'<circle class="point" cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5"{style}>'
                   f'<title>{escape(title)}</title></circle>')
    out.append("</svg>")
    return "\n".join(out)
