"""Plots rendered on the server: matplotlib (Agg) to SVG markup the page
includes inline.

The page's Content-Security-Policy allows no inline styles (django-csp with
nonces, issue #7), and matplotlib writes its SVG with `style="…"` attributes
and a `<style>` element. `csp_safe_svg` rewrites each style declaration as
the SVG presentation attribute of the same name (fill, stroke, stroke-width,
opacity, …), which CSP does not govern, and drops the `<style>` element
(its two defaults go on the root `<svg>`, where they are inherited), so the
plot draws the same under `style-src 'self'`.
"""

from __future__ import annotations

import io
import re
from collections import defaultdict
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # no display; before any pyplot import anywhere
from matplotlib.figure import Figure  # noqa: E402

# A fixed salt keeps the ids matplotlib derives stable from one render to the next.
matplotlib.rcParams["svg.hashsalt"] = "chairside"
matplotlib.rcParams["font.size"] = 9

COLOURS = ("#0d6efd", "#198754", "#fd7e14", "#6f42c1", "#d63384", "#20c997", "#ffc107", "#6c757d", "#0dcaf0", "#dc3545")
_STYLE_ATTR = re.compile(r'style="([^"]*)"')


def _attributes(match: re.Match) -> str:
    pairs = []
    for declaration in match.group(1).split(";"):
        if ":" in declaration:
            name, value = declaration.split(":", 1)
            pairs.append(f'{name.strip()}="{value.strip()}"')
    return " ".join(pairs)


def csp_safe_svg(svg: str, *, label: str) -> str:
    """`svg` (matplotlib's output) as inline markup with no style attribute or
    element, no XML prolog or metadata, sized by CSS, titled `label` for screen readers."""
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    svg = re.sub(r"<style[^>]*>.*?</style>\s*", "", svg, flags=re.S)
    svg = _STYLE_ATTR.sub(_attributes, svg)
    svg = re.sub(r'<svg ([^>]*?)width="[^"]*" height="[^"]*"', r'<svg \1', svg, count=1)
    return svg.replace("<svg ", f'<svg role="img" aria-label="{label}" class="report-plot" stroke-linejoin="round" stroke-linecap="butt" ', 1)


def _render(fig: Figure, label: str) -> str:
    out = io.StringIO()
    fig.savefig(out, format="svg", metadata={"Date": None}, bbox_inches="tight")
    return csp_safe_svg(out.getvalue(), label=label)


def minutes_histogram(distribution: Sequence[tuple[int, int]], thresholds: Sequence[tuple[int, int]], near: int) -> str:
    """Bars of administrations per whole minute, a dashed line between each
    threshold pair (15|16, 30|31, 90|91, 150|151) and the `near` minutes just
    above it shaded, as inline SVG."""
    fig = Figure(figsize=(9, 3.2))
    ax = fig.subplots()
    top = max([m for m, _ in distribution] + [thresholds[-1][1] + 20])
    for last, first in thresholds:
        ax.axvspan(first - 0.5, first + near - 0.5, color="#ffc107", alpha=0.35, linewidth=0)
        ax.axvline(last + 0.5, color="#dc3545", linestyle="--", linewidth=1)
        ax.annotate(f"{last}/{first}", (last + 0.5, 1), xycoords=("data", "axes fraction"), xytext=(2, -10), textcoords="offset points", color="#dc3545")
    if distribution:
        ax.bar([m for m, _ in distribution], [n for _, n in distribution], width=0.9, color=COLOURS[0])
    ax.set_xlim(-0.5, top + 0.5)
    ax.set_xlabel("Infusion minutes (drip to drip, pauses excluded)")
    ax.set_ylabel("Administrations")
    ax.spines[["top", "right"]].set_visible(False)
    return _render(fig, "Distribution of infusion minutes with the billing thresholds marked")


def code_mix_bars(rows: Sequence[tuple], *, top_codes: int = 9) -> str:
    """Stacked bars of suggested lines per period and code (`rows`: period,
    code, lines, units), the `top_codes` commonest codes by name and the rest as
    "other", as inline SVG."""
    totals: dict[str, int] = defaultdict(int)
    for _, code, lines, _units in rows:
        totals[code] += lines
    kept = sorted(sorted(totals, key=lambda c: -totals[c])[:top_codes])
    periods = sorted({period for period, *_ in rows})
    series: dict[str, list[int]] = {code: [0] * len(periods) for code in [*kept, "other"]}
    for period, code, lines, _units in rows:
        series[code if code in kept else "other"][periods.index(period)] += lines
    fig = Figure(figsize=(9, 3.2))
    ax = fig.subplots()
    bottom = [0] * len(periods)
    for i, (code, values) in enumerate(series.items()):
        if any(values):
            ax.bar(periods, values, bottom=bottom, label=code, color=COLOURS[i % len(COLOURS)])
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_ylabel("Suggested lines")
    ax.set_xlabel("Period starting")
    if periods:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.tick_params(axis="x", labelrotation=45)
    ax.spines[["top", "right"]].set_visible(False)
    return _render(fig, "Code mix over time: suggested lines per period and code")


def signing_bars(rows: Sequence[tuple]) -> str:
    """Horizontal stacked bars per clinic and nurse: signed on time, late and
    unsigned encounters (`rows`: the completeness by-nurse table), as inline SVG."""
    labels = [f"{r[1]} ({r[0]})" for r in rows]
    fig = Figure(figsize=(9, max(1.6, 0.45 * len(rows) + 0.9)))
    ax = fig.subplots()
    left = [0] * len(rows)
    for index, name, colour in ((4, "signed on time", COLOURS[1]), (5, "signed late", COLOURS[2]), (6, "unsigned", "#dc3545")):
        values = [r[index] for r in rows]
        ax.barh(labels, values, left=left, label=name, color=colour)
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.invert_yaxis()
    ax.set_xlabel("Encounters")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _render(fig, "Encounters signed on time, late and unsigned per nurse")


def override_reason_bars(by_reason_action: dict[str, dict[str, int]]) -> str:
    """Horizontal bars of overridden lines per reason, most used on top, each
    stacked by what the coder did (changed, deleted, added), as inline SVG
    (`by_reason_action`: reports.overrides()["by_reason_action"])."""
    labels = list(by_reason_action)
    actions = list(dict.fromkeys(a for counts in by_reason_action.values() for a in counts))
    fig = Figure(figsize=(9, max(1.6, 0.4 * len(labels) + 0.9)))
    ax = fig.subplots()
    left = [0] * len(labels)
    colours = ("#fd7e14", "#dc3545", COLOURS[1], *COLOURS)  # changed, deleted, added
    for i, action in enumerate(actions):
        values = [by_reason_action[label].get(action, 0) for label in labels]
        if not any(values):
            continue  # no bar, no legend entry
        ax.barh(labels, values, left=left, label=action.lower(), color=colours[i % len(colours)])
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.invert_yaxis()
    ax.set_xlabel("Overridden lines")
    ax.xaxis.get_major_locator().set_params(integer=True)
    if labels:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _render(fig, "Overridden lines per reason, by what the coder did")
