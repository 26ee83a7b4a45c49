"""The trace viewer page: one self-contained HTML string (inline CSS, JS and SVG; no network).

Every piece of text from the records goes through ``html.escape`` (traces hold ``<``, ``&``);
numbers go into ``data-*`` attributes, never into the script, so no record can inject code.
"""
from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Sequence

from . import static, svg
from .load import TraceRecord
from .summary import (TraceSummary, budget_label, choose_budgets, mean_regret, progress_scale,
                      summarize_trace)


@dataclass
class Report:
    """The page and the numbers on it (for the CLI's one-line summary and for tests)."""

    html: str
    budgets: list[float]
    mean_regret: dict[float, float]
    num_traces: int
    num_episodes: int


def _num(x: float | None) -> str:
    """A number for a data-* attribute: full precision, empty for None."""
    return "" if x is None else repr(float(x))


def _clip(text: str, limit: int = 32) -> str:
    """First line of ``text``, at most ``limit`` chars (the index table stays one screen wide)."""
    line = text.strip().split("\n", 1)[0]
    return line if len(line) <= limit and line == text.strip() else line[: limit - 1] + "…"


def _legend(scale: float) -> str:
    bar = (f"linear-gradient(to right, {svg.progress_colour(-scale, scale)}, "
           f"{svg.progress_colour(0, scale)}, {svg.progress_colour(scale, scale)})")
    return (f'<div class="legend" id="legend"><span>episode progress J<sub>k</sub> − J<sub>k−1</sub>:</span>'
            f'<span>{svg.fmt(-scale)} (J fell)</span><span class="bar" style="background:{bar}"></span>'
            f'<span>{svg.fmt(scale)} (J rose)</span></div>')


def _index_table(records: Sequence[TraceRecord], summaries: Sequence[TraceSummary], budgets) -> str:
    heads = [("trace", "trace", ""), ("id", "id", "text"), ("problem", None, "text"),
             ("episodes", "episodes", ""), ("J start", "j_first", ""), ("J end", "j_last", ""),
             ("mean progress", "progress", ""), ("outcome", "outcome", "")]
    heads += [(f"regret {budget_label(b)}", f"regret_{int(b)}", "") for b in budgets]
    out = ['<div class="scroll"><table id="index" class="sortable"><thead><tr>']
    for label, key, cls in heads:
        sort = f' data-sort="{key}"' if key else ""
        out.append(f'<th class="{cls}"{sort}>{escape(label)}</th>')
    out.append("</tr></thead><tbody>")
    for k, (rec, s) in enumerate(zip(records, summaries)):
        r = rec.result
        cells = [(k, f'<a href="#trace-{k}">{k}</a>', ""), (rec.label, escape(rec.label), "text"),
                 (None, escape(_clip(rec.problem)), "text"), (r.num_episodes, str(r.num_episodes), ""),
                 (r.j[0], svg.fmt(r.j[0]), ""), (r.j[-1], svg.fmt(r.j[-1]), ""),
                 (s.mean_progress, svg.fmt(s.mean_progress), ""), (r.outcome, svg.fmt(r.outcome), "")]
        cells += [(s.regret[b], svg.fmt(s.regret[b]), "") for b in budgets]
        out.append(f'<tr class="trace-row" data-trace="{k}">')
        for v, shown, cls in cells:
            data = escape(v, quote=True) if isinstance(v, str) else _num(v)
            out.append(f'<td class="{cls}" data-v="{data}">{shown}</td>')
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _charts(rec: TraceRecord, s: TraceSummary, budgets, scale: float) -> str:
    r = rec.result
    # J over tokens as the regret integral sees it: (0, 0) first, then every cut.
    token_titles = ["nothing spent: (0, 0)"] + [f"cut {k}: {t:g} tokens, J {svg.fmt(j)}"
                                                 for k, (t, j) in enumerate(zip(s.tokens, s.j))]
    by_tokens = svg.Chart([0.0, *s.tokens], [0.0, *s.j], "tokens at cut", "J", point_titles=token_titles,
                          marks={b: budget_label(b) for b in budgets}, css_class="chart j-tokens")
    colours = ["#fff"] + [svg.progress_colour(p, scale) for p in r.progress]
    ep_titles = [f"after episode {k}: J {svg.fmt(j)}" for k, j in enumerate(r.j)]
    by_episode = svg.Chart(list(range(len(r.j))), r.j, "episodes completed", "J", point_titles=ep_titles,
                           point_colours=colours, css_class="chart j-episodes", integer_x=True)
    return f'<div class="charts">{svg.render(by_tokens)}{svg.render(by_episode)}</div>'


def _regret_table(s: TraceSummary, budgets) -> str:
    heads = "".join(f"<th>{budget_label(b)}</th>" for b in budgets)
    cells = "".join(f'<td data-v="{_num(s.regret[b])}">{svg.fmt(s.regret[b])}</td>' for b in budgets)
    return (f'<table class="regret"><tr><th>normalized regret at budget</th>{heads}</tr>'
            f"<tr><td></td>{cells}</tr></table>")


def _episodes(rec: TraceRecord, scale: float) -> str:
    r = rec.result
    if not r.episodes:
        return '<div class="episodes"><p class="empty">empty trace: no episodes (J only at the empty prefix)</p></div>'
    out = ['<div class="episodes">']
    for k, (text, p) in enumerate(zip(r.episodes, r.progress), 1):
        colour = svg.progress_colour(p, scale)
        out.append(f'<div class="episode" data-episode="{k}" data-j="{_num(r.j[k])}" data-progress="{_num(p)}" '
                   f'style="border-left-color:{colour};background:{colour}" '
                   f'title="episode {k}: progress {svg.fmt(p)}, J {svg.fmt(r.j[k])}">'
                   f'<div class="head">episode {k} · progress {svg.fmt(p)} · J {svg.fmt(r.j[k])} '
                   f'· {r.cut_tokens[k] - r.cut_tokens[k - 1]} tokens</div>'
                   f'<div class="text">{escape(text) or "<span class=empty>(empty)</span>"}</div></div>')
    out.append("</div>")
    return "".join(out)


def _trace_section(k: int, rec: TraceRecord, s: TraceSummary, budgets, scale: float) -> str:
    r = rec.result
    answers = ", ".join(escape(a) for a in rec.answers) or "–"
    outcome = "not graded" if r.outcome is None else svg.fmt(r.outcome)
    generated = " · generated by the engine" if rec.generated else ""
    return (f'<section class="trace" id="trace-{k}" data-trace="{k}" data-num-episodes="{r.num_episodes}">'
            f"<h2>Trace {k}: {escape(rec.label)}</h2>"
            f'<p class="meta">reference answer: <b>{answers}</b> · outcome: <b>{outcome}</b> · '
            f"{escape(str(r.mode))}/{escape(str(r.method))} · {r.num_episodes} episodes, "
            f"{s.num_positive} with positive progress · line {rec.line}{generated}</p>"
            f'<pre class="problem">{escape(rec.problem)}</pre>'
            f"{_regret_table(s, budgets)}{_charts(rec, s, budgets, scale)}{_episodes(rec, scale)}</section>")


def build_report(records: Sequence[TraceRecord], *, budgets: Sequence[float] | None = None,
                 title: str = "MRT trace viewer", source: str = "") -> Report:
    """The viewer page for ``records`` (from ``read_progress``); ``budgets`` default to
    ``choose_budgets(records)``."""
    if not records:
        raise ValueError("build_report: no records to show")
    budgets = sorted(budgets) if budgets else choose_budgets(records)
    summaries = [summarize_trace(r, budgets) for r in records]
    means = mean_regret(summaries, budgets)
    scale = progress_scale(records)
    num_episodes = sum(r.result.num_episodes for r in records)
    mean_text = ", ".join(f"{budget_label(b)}: {svg.fmt(v)}" for b, v in means.items())
    body = (f"<h1>{escape(title)}</h1>"
            f'<p class="meta">{escape(source)} · {len(records)} traces · {num_episodes} episodes · '
            f"mean normalized regret {mean_text}</p>"
            f'<p class="meta">Click a column header to sort. <span id="report-status">loading</span></p>'
            f'<div id="report-errors"></div>{_legend(scale)}{_index_table(records, summaries, budgets)}'
            + "".join(_trace_section(k, r, s, budgets, scale) for k, (r, s) in enumerate(zip(records, summaries))))
    html = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{static.CSS}</style><script>{static.ERROR_HOOK}</script></head>"
            f'<body data-report-status="loading">{body}<script>{static.MAIN}</script></body></html>')
    return Report(html=html, budgets=list(budgets), mean_regret=means, num_traces=len(records),
                  num_episodes=num_episodes)
