"""Plotly figures of a benchmark: final loss vs tokens, speedup vs data ratio, validation curves, spectral ranks.

plotly is imported when a function is called (the core library does not depend on it). The chapter's widget
(``widgets.bench.BenchExplorer``) and ``python -m minidiff.train.bench`` (its ``plots.html``) both draw with these.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

__all__ = [
    "color",
    "loss_figure",
    "speedup_figure",
    "lr_figure",
    "curves_figure",
    "spectral_figure",
    "write_html",
]

_COLORS = {
    "adamw": "#1f77b4",
    "muon": "#d62728",
    "soap": "#2ca02c",
    "lion": "#9467bd",
    "ademamix": "#ff7f0e",
    "d-muon": "#8c564b",
}
_SPARE = ("#17becf", "#e377c2", "#7f7f7f", "#bcbd22")


def color(name: str) -> str:
    """A fixed colour per optimizer, so every figure of the chapter uses the same."""
    return _COLORS.get(name, _SPARE[sum(map(ord, name)) % len(_SPARE)])


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _layout(fig, title: str, x: str, y: str, *, log_x: bool = True, height: int = 420):
    fig.update_layout(
        title={"text": title, "x": 0, "xanchor": "left"},
        xaxis={"title": {"text": x}, "type": "log" if log_x else "linear"},
        yaxis={"title": {"text": y}},
        height=height,
        legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom"},
        margin={"l": 70, "r": 20, "t": 80, "b": 60},
        hovermode="closest",
        showlegend=True,
        template="plotly_white",
    )
    return fig


def _ticks(fig, values, fmt: str = "{:g}") -> None:
    """Ticks of a log x axis at exactly the budgets (or widths) that were run."""
    values = sorted(set(values))
    fig.update_xaxes(tickvals=values, ticktext=[fmt.format(v) for v in values])


def loss_figure(summary: Sequence[dict], size: str, baseline: str = "adamw"):
    """Final validation loss (mean over seeds, bars: min to max) against training tokens, per optimizer."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name in dict.fromkeys(r["optimizer"] for r in summary):
        rows = sorted(
            (r for r in summary if r["optimizer"] == name and r["size"] == size), key=lambda r: r["tokens"]
        )
        rows = [r for r in rows if _finite(r["loss_mean"])]
        if not rows:
            continue
        fig.add_scatter(
            x=[r["tokens"] for r in rows],
            y=[r["loss_mean"] for r in rows],
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [r["loss_max"] - r["loss_mean"] for r in rows],
                "arrayminus": [r["loss_mean"] - r["loss_min"] for r in rows],
                "thickness": 1.5,
            },
            mode="lines+markers",
            name=name,
            line={
                "color": color(name),
                "width": 3 if name == baseline else 2,
                "dash": "dash" if name == baseline else "solid",
            },
            customdata=[[r["ratio"], r["lr"], r["n_seeds"]] for r in rows],
            hovertemplate=f"{name}<br>%{{x:,}} tokens (%{{customdata[0]}}x Chinchilla)<br>loss %{{y:.4f}}"
            "<br>tuned lr %{customdata[1]:.3g}, %{customdata[2]} seeds<extra></extra>",
        )
    return _layout(
        fig,
        f"{size}: tuned final validation loss (bars: min–max over seeds)",
        "training tokens (log)",
        "validation loss (nats/char)",
    )


def speedup_figure(summary: Sequence[dict], size: str, baseline: str = "adamw"):
    """Speedup over the baseline against the data ratio (mean over seeds, bars: min to max). Cells outside the
    baseline's budgets are drawn as open triangles at their bound (pointing the way the true value lies)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_hline(y=1.0, line={"color": color(baseline), "dash": "dash"})  # the baseline itself
    names = [n for n in dict.fromkeys(r["optimizer"] for r in summary) if n != baseline]
    # each optimizer's points nudged sideways (a few % on the log axis) so that their bars do not overlap
    dodge = {n: 2 ** (0.04 * (k - (len(names) - 1) / 2)) for k, n in enumerate(names)}
    for name in names:
        rows = sorted(
            (r for r in summary if r["optimizer"] == name and r["size"] == size and r["speedup_flags"]),
            key=lambda r: r["ratio"],
        )
        if not rows:
            continue
        ok = [r for r in rows if _finite(r["speedup_mean"])]
        fig.add_scatter(
            x=[r["ratio"] * dodge[name] for r in ok],
            y=[r["speedup_mean"] for r in ok],
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [r["speedup_max"] - r["speedup_mean"] for r in ok],
                "arrayminus": [r["speedup_mean"] - r["speedup_min"] for r in ok],
                "thickness": 1.5,
            },
            mode="lines+markers",
            name=name,
            legendgroup=name,
            line={"color": color(name), "width": 2},
            customdata=[[r["speedup_text"], r["lr"], r["ratio"]] for r in ok],
            hovertemplate=f"{name} at %{{customdata[2]:g}}x: %{{customdata[0]}}<br>tuned lr %{{customdata[1]:.3g}}"
            "<extra></extra>",
        )
        out = [
            r for r in rows if not _finite(r["speedup_mean"]) and _finite(r.get("speedup_bound", math.nan))
        ]
        if out:
            above = ["above" in r["speedup_flags"] for r in out]
            fig.add_scatter(
                x=[r["ratio"] * dodge[name] for r in out],
                y=[r["speedup_bound"] for r in out],
                mode="markers",
                marker={
                    "symbol": ["triangle-up-open" if a else "triangle-down-open" for a in above],
                    "size": 12,
                    "color": color(name),
                },
                name=f"{name} (out of {baseline}'s range)",
                legendgroup=name,
                showlegend=False,
                customdata=[[r["speedup_text"], r["ratio"]] for r in out],
                hovertemplate=f"{name} at %{{customdata[1]:g}}x: %{{customdata[0]}} (beyond {baseline}'s budgets)"
                "<extra></extra>",
            )
    fig = _layout(
        fig,
        f"{size}: token-efficiency speedup over {baseline} (bars: min–max over seeds)",
        "data budget D / (20 N), log scale",
        f"tokens {baseline} needs / tokens used (dashed: {baseline})",
    )
    _ticks(fig, [r["ratio"] for r in summary if r["size"] == size and r["speedup_flags"]], "{:g}x")
    return fig


def lr_figure(runs: Sequence[dict], size: str, ratio: float, seed: int = 0):
    """Final validation loss against the learning rate at one (size, ratio, seed): each optimizer's LR grid at its
    tuned other hyperparameters, its tuned LR ringed. A curve's width says how much a sloppy LR would cost."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name in dict.fromkeys(r["optimizer"] for r in runs):
        tuned = [
            r
            for r in runs
            if (r["optimizer"], r["size"], r["ratio"], r["seed"]) == (name, size, ratio, seed) and r["final"]
        ]
        if not tuned:
            continue
        grid = sorted(
            (r for r in runs if (r["optimizer"], r["size"], r["ratio"], r["seed"]) == (name, size, ratio, seed)
             and r["hparams"] == tuned[0]["hparams"] and _finite(r["val_loss"])),
            key=lambda r: r["lr"],
        )  # fmt: skip
        fig.add_scatter(
            x=[r["lr"] for r in grid], y=[r["val_loss"] for r in grid], mode="lines+markers", name=name,
            legendgroup=name, line={"color": color(name), "width": 2},
            hovertemplate=f"{name}: lr %{{x:.3g}}, loss %{{y:.4f}}<extra></extra>",
        )  # fmt: skip
        fig.add_scatter(
            x=[tuned[0]["lr"]], y=[tuned[0]["val_loss"]], mode="markers", legendgroup=name, showlegend=False,
            marker={"symbol": "circle-open", "size": 16, "color": color(name), "line": {"width": 2}}, hoverinfo="skip",
        )  # fmt: skip
    title = f"{size} at {ratio:g}x Chinchilla, seed {seed}: final loss against learning rate (ring: tuned)"
    return _layout(fig, title, "peak learning rate (log)", "validation loss (nats/char)")


def curves_figure(
    runs: Sequence[dict],
    labels: Sequence[str] | None = None,
    *,
    title: str = "",
    mark_step: int | None = None,
    schedule: bool = True,
):
    """Validation loss at the runs' checkpoints against tokens seen (one line per run); ``mark_step`` draws a
    vertical line at that step's tokens (e.g. the mid-run checkpoint where a ranking is read); ``schedule`` shades
    the first run's learning-rate multiplier on a right axis, to show where the decay happens."""
    import plotly.graph_objects as go

    fig = go.Figure()
    if schedule and runs and "config" in runs[0]:
        _schedule_trace(fig, runs[0])
    labels = labels or [f"{r['optimizer']} lr={r['lr']:g}" for r in runs]
    dashes = ("solid", "dash", "dot", "dashdot")
    for i, (run, label) in enumerate(zip(runs, labels)):
        curve = run["curve"]
        fig.add_scatter(
            x=curve["tokens"],
            y=curve["val_loss"],
            mode="lines+markers",
            name=label,
            line={"color": color(run["optimizer"]), "width": 2, "dash": dashes[i % len(dashes)]},
            hovertemplate=f"{label}<br>%{{x:,}} tokens: loss %{{y:.4f}}<extra></extra>",
        )
    if mark_step is not None and runs:
        curve = runs[0]["curve"]
        i = min(range(len(curve["step"])), key=lambda j: abs(curve["step"][j] - mark_step))
        fig.add_vline(
            x=curve["tokens"][i], line={"color": "#888", "dash": "dot"}, annotation_text="mid-run checkpoint"
        )
    fig = _layout(fig, title, "tokens seen", "validation loss (nats/char)", log_x=False)
    return fig.update_layout(margin={"r": 70}) if schedule else fig


def _schedule_trace(fig, run: dict) -> None:
    from minidiff.train.bench import RunConfig
    from minidiff.train.lr_schedules import get_lr_schedule

    config = RunConfig.from_dict(run["config"])
    kwargs = {} if config.schedule == "constant" else {"min_ratio": config.min_ratio}
    multiplier = get_lr_schedule(config.schedule, config.steps, config.warmup, **kwargs)
    steps = list(range(0, config.steps + 1, max(1, config.steps // 100)))
    per_step = config.batch_size * config.seq_len
    fig.add_scatter(
        x=[s * per_step for s in steps], y=[multiplier(s) for s in steps], yaxis="y2", mode="lines",
        fill="tozeroy", name="LR / peak LR (right axis)", line={"color": "rgba(120,120,120,0.6)", "width": 1},
        fillcolor="rgba(150,150,150,0.12)", hoverinfo="skip",
    )  # fmt: skip
    fig.update_layout(
        yaxis2={
            "overlaying": "y",
            "side": "right",
            "range": [0, 1.05],
            "showgrid": False,
            "tickvals": [0, 0.25, 0.5, 0.75, 1],
            "title": {"text": "LR / peak LR"},
        }
    )


def spectral_figure(spectral, bucket: str = "tail", kind: str = "hard"):
    """Rank of the FFN representations against d_ff (log-log) per optimizer, each seed a point, with the fitted
    power law rank = A · d_ff^β."""
    import plotly.graph_objects as go

    fig = go.Figure()
    rows = [r for r in spectral.rows if r["bucket"] == bucket]
    for name in dict.fromkeys(r["optimizer"] for r in rows):
        mine = [r for r in rows if r["optimizer"] == name]
        fig.add_scatter(
            x=[r["d_ff"] for r in mine], y=[r[kind] for r in mine], mode="markers", name=name, legendgroup=name,
            marker={"color": color(name), "size": 8}, hovertemplate=f"{name}: d_ff %{{x}}, {kind} rank %{{y:.1f}}<extra></extra>",
        )  # fmt: skip
        fit = [
            e for e in spectral.exponents if (e["optimizer"], e["bucket"], e["kind"]) == (name, bucket, kind)
        ]
        if fit:
            widths = sorted({r["d_ff"] for r in mine})
            fig.add_scatter(
                x=widths, y=[fit[0]["A"] * w ** fit[0]["beta"] for w in widths], mode="lines", legendgroup=name,
                name=f"{name}: β = {fit[0]['beta']:.2f}", line={"color": color(name), "width": 2}, hoverinfo="skip",
            )  # fmt: skip
    fig = _layout(
        fig,
        f"{kind} rank of the FFN post-activation, {bucket.upper()} tokens (median over layers)",
        "FFN width d_ff, log scale",
        f"{kind} rank, log scale",
    )
    fig.update_yaxes(type="log")
    _ticks(fig, [r["d_ff"] for r in rows])
    return fig


def write_html(result, path: str | os.PathLike, spectral=None) -> None:
    """Every figure of a :class:`~minidiff.train.bench_sweep.BenchResult` in one offline HTML page."""
    import plotly.io as pio

    summary = result.summary()
    sizes = list(dict.fromkeys(r["size"] for r in summary))
    figures = [loss_figure(summary, s, result.baseline) for s in sizes]
    figures += [speedup_figure(summary, s, result.baseline) for s in sizes]
    if spectral is not None:
        figures.append(spectral_figure(spectral))
    parts = [pio.to_html(f, full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figures)]
    title = f"minidiff optimizer benchmark, preset {result.preset['name']}"
    html = f"<html><head><meta charset='utf-8'><title>{title}</title></head><body><h2>{title}</h2>{''.join(parts)}</body></html>"
    with open(path, "w", encoding="utf-8") as f:
        f.write(html)
