"""Charts as inline SVG, drawn on the server: best-so-far against evaluations, the Pareto front.

Numbers are formatted here; the only text from the store that reaches a chart (candidate origins in
tooltips) is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from markupsafe import Markup, escape

WIDTH, HEIGHT = 560, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 40


def _scale(lo: float, hi: float, a: float, b: float) -> Any:
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) * (b - a) / span


def _range(values: Sequence[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.05 or 1.0
    return lo - pad, hi + pad


def _frame(x_label: str, y_label: str, xs: tuple[float, float], ys: tuple[float, float], body: str) -> Markup:
    x0, x1 = LEFT, WIDTH - RIGHT
    y0, y1 = HEIGHT - BOTTOM, TOP
    ticks = []
    for i in range(5):
        fx = xs[0] + (xs[1] - xs[0]) * i / 4
        fy = ys[0] + (ys[1] - ys[0]) * i / 4
        px = x0 + (x1 - x0) * i / 4
        py = y0 + (y1 - y0) * i / 4
        ticks.append(f'<text x="{px:.1f}" y="{y0 + 16}" class="tick" text-anchor="middle">{fx:.4g}</text>')
        ticks.append(f'<text x="{x0 - 6}" y="{py + 4:.1f}" class="tick" text-anchor="end">{fy:.4g}</text>')
        ticks.append(f'<line x1="{x0}" x2="{x1}" y1="{py:.1f}" y2="{py:.1f}" class="grid"/>')
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(y_label)}'
        f' against {escape(x_label)}">'
        f'<line x1="{x0}" x2="{x1}" y1="{y0}" y2="{y0}" class="axis"/>'
        f'<line x1="{x0}" x2="{x0}" y1="{y0}" y2="{y1}" class="axis"/>'
        + "".join(ticks)
        + f'<text x="{(x0 + x1) / 2}" y="{HEIGHT - 4}" class="label" text-anchor="middle">'
        f"{escape(x_label)}</text>"
        f'<text x="12" y="{(y0 + y1) / 2}" class="label" text-anchor="middle" '
        f'transform="rotate(-90 12 {(y0 + y1) / 2})">{escape(y_label)}</text>' + body + "</svg>"
    )


def best_so_far_chart(series: Sequence[dict[str, Any]], baseline: float | None, label: str) -> Markup:
    """A step line of the best primary-objective value after each evaluation (baseline dashed)."""
    points = [(float(p["evaluation"]), float(p["best"])) for p in series if p["best"] is not None]
    if not points:
        return Markup('<p class="muted">No evaluations yet.</p>')
    values = [y for _, y in points] + ([baseline] if baseline is not None else [])
    xs = (0.0, max(1.0, points[-1][0]))
    ys = _range(values)
    sx, sy = _scale(*xs, LEFT, WIDTH - RIGHT), _scale(*ys, HEIGHT - BOTTOM, TOP)
    start = baseline if baseline is not None else points[0][1]
    path = [f"M{sx(0):.1f},{sy(start):.1f}"]
    previous = start
    for x, y in points:
        path.append(f"L{sx(x):.1f},{sy(previous):.1f} L{sx(x):.1f},{sy(y):.1f}")
        previous = y
    body = f'<path d="{" ".join(path)}" class="line"/>'
    if baseline is not None:
        body += (
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{sy(baseline):.1f}" y2="{sy(baseline):.1f}" '
            f'class="baseline"><title>original: {baseline:.4g}</title></line>'
        )
    body += "".join(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" class="dot"/>' for x, y in points)
    return _frame("evaluations", f"best {label}", xs, ys, body)


def pareto_chart(
    points: Sequence[dict[str, Any]],
    front_ids: set[int],
    x_metric: str,
    y_metric: str,
    original_id: int | None,
    link: str,
) -> Markup:
    """Every accepted candidate as a dot (x_metric vs y_metric); the front joined and highlighted."""
    usable = [
        (float(p["metrics"][x_metric]), float(p["metrics"][y_metric]), p)
        for p in points
        if p["metrics"].get(x_metric) is not None and p["metrics"].get(y_metric) is not None
    ]
    if not usable:
        return Markup('<p class="muted">No accepted candidate with both metrics yet.</p>')
    xs, ys = _range([u[0] for u in usable]), _range([u[1] for u in usable])
    sx, sy = _scale(*xs, LEFT, WIDTH - RIGHT), _scale(*ys, HEIGHT - BOTTOM, TOP)
    front = sorted((u for u in usable if u[2]["candidate_id"] in front_ids), key=lambda u: u[0])
    body = ""
    if len(front) > 1:
        d = " ".join(f"{'M' if i == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for i, (x, y, _) in enumerate(front))
        body += f'<path d="{d}" class="front"/>'
    for x, y, p in usable:
        cid = int(p["candidate_id"])
        css = "orig" if cid == original_id else ("onfront" if cid in front_ids else "dot")
        title = escape(f"#{cid} {p['origin']}: {x_metric} {x:.4g}, {y_metric} {y:.4g}")
        body += (
            f'<a href="{escape(link.format(cid=cid))}"><circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="5" '
            f'class="{css}"><title>{title}</title></circle></a>'
        )
    return _frame(x_metric, y_metric, xs, ys, body)
