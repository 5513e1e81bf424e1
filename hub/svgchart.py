"""Small accessible SVG bar charts rendered on the server (no JavaScript, no library)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup


def bar_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float], str]],
    unit: str,
    width: int = 760,
    height: int = 240,
) -> Markup:
    """Grouped bars: `series` is (name, values, css class); every bar carries a <title>."""
    pad_left, pad_bottom, pad_top = 44, 42, 12
    plot_w, plot_h = width - pad_left - 8, height - pad_bottom - pad_top
    peak = max([v for _, values, _ in series for v in values] + [1.0])
    group_w = plot_w / max(1, len(labels))
    bar_w = max(2.0, group_w * 0.8 / max(1, len(series)))
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>"
    ]
    for frac in (0.0, 0.5, 1.0):
        y = pad_top + plot_h * (1 - frac)
        parts.append(
            f'<line class="grid" x1="{pad_left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{pad_left - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{peak * frac:.0f}</text>"
        )
    step = max(1, len(labels) // 15)
    for i, label in enumerate(labels):
        x0 = pad_left + i * group_w + group_w * 0.1
        for j, (name, values, css) in enumerate(series):
            value = values[i]
            h = plot_h * value / peak
            x = x0 + j * bar_w
            parts.append(
                f'<rect class="{css}" x="{x:.1f}" y="{pad_top + plot_h - h:.1f}" '
                f'width="{bar_w - 1:.1f}" height="{h:.1f}"><title>{escape(label)}: '
                f"{escape(name)} {value:.1f} {escape(unit)}</title></rect>"
            )
        if i % step == 0:
            parts.append(
                f'<text class="axis" x="{x0 + group_w * 0.4:.1f}" y="{height - pad_bottom + 16}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    legend_x = pad_left
    for name, _values, css in series:
        parts.append(
            f'<rect class="{css}" x="{legend_x}" y="{height - 16}" width="12" height="12"/>'
            f'<text class="axis" x="{legend_x + 16}" y="{height - 6}">{escape(name)}</text>'
        )
        legend_x += 24 + 8 * len(name)
    parts.append("</svg>")
    return Markup("".join(parts))
