"""``HistoryViewer``: the training curves of one or several runs, from :class:`minidiff.train.History`.

Controls: the smoothing window (a trailing mean over the last ``w`` logged steps, as ``History.smoothed``), the
metric (loss, the extra metrics a loss returned, evaluation metrics, grad norm, learning rate) and a log/linear
y axis. Every run is drawn twice in one colour: the raw series, faint, and its smoothed version. Curves are
downsampled to at most ``max_points`` points *after* smoothing, which keeps the static face small.

    >>> HistoryViewer({"AdamW": h_adamw, "Muon": h_muon})     # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go

from widgets.base import Widget

__all__ = ["HistoryViewer", "trailing_mean"]

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f")
_WINDOWS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
_X_KEYS = ("step", "tokens", "wall_time")
_X_LABELS = {"step": "step", "tokens": "tokens seen", "wall_time": "wall time (s)"}
_UNSMOOTHED = ("lr",)  # a schedule, not a noisy measurement


def trailing_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` finite values at every position (NaN where there are none), like
    ``History.smoothed`` but vectorised."""
    if not isinstance(window, (int, np.integer)) or isinstance(window, bool) or window < 1:
        raise ValueError(f"window must be a positive int, got {window!r}")
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    sums = np.concatenate([[0.0], np.cumsum(np.where(finite, values, 0.0))])
    counts = np.concatenate([[0], np.cumsum(finite)])
    i = np.arange(len(values))
    lo = np.maximum(0, i - window + 1)
    n = counts[i + 1] - counts[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (sums[i + 1] - sums[lo]) / np.maximum(n, 1), np.nan)


def _is_history(obj: Any) -> bool:
    if isinstance(obj, Mapping):
        return "step" in obj and "loss" in obj and not isinstance(obj["step"], Mapping)
    return hasattr(obj, "to_dict") and hasattr(obj, "step") and hasattr(obj, "loss")


class _Run:
    """One run's columns as arrays: ``x`` and per metric ``(x, y, smoothable)``."""

    def __init__(self, history: Any, x_key: str) -> None:
        data = history.to_dict() if not isinstance(history, Mapping) else history
        self.x = _x_array(data[x_key])
        self.series: dict[str, tuple[np.ndarray, np.ndarray, bool]] = {}
        names = ["loss", *sorted(data.get("extra", {})), "grad_norm", "lr"]
        for name in names:
            y = np.asarray(data[name] if name in data else data["extra"][name], dtype=np.float64)
            if len(y) == len(self.x) and np.isfinite(y).any():
                self.series[name] = (self.x, y, name not in _UNSMOOTHED)
        evals = data.get("evals", [])
        eval_names = sorted({k for e in evals for k, v in e.items() if k != "step" and _is_number(v)})
        steps = np.asarray(data["step"], dtype=np.float64)
        for name in eval_names:
            points = [(e["step"], float(e[name])) for e in evals if name in e and _is_number(e[name])]
            eval_steps = np.array([s for s, _ in points], dtype=np.float64)
            eval_x = (
                eval_steps if x_key == "step" or len(steps) == 0 else np.interp(eval_steps, steps, self.x)
            )
            self.series[f"eval {name}"] = (eval_x, np.array([v for _, v in points]), False)
        self.n = len(self.x)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _x_array(values: Any) -> np.ndarray:
    x = np.asarray(values)
    if x.dtype.kind in "iu" and (len(x) == 0 or abs(x).max() < 2**31):
        return x.astype(np.int32)
    return x.astype(np.float64)


class HistoryViewer(Widget):
    """Loss curves (and other logged series) of one run or several overlaid, with smoothing and log/linear y.

    Args:
        histories: a ``History``, its ``to_dict()``, or a mapping ``{run name: History}``.
        metrics: the series offered (default: every one logged with a finite value: ``loss``, extra metrics,
            ``eval <name>`` for evaluation metrics, ``grad_norm``, ``lr``).
        smoothing: the smoothing windows offered (default: 1, 2, 5, 10, ... up to half the longest run).
        x: the x axis, ``"step"``, ``"tokens"`` or ``"wall_time"``.
        max_points: at most this many points drawn per curve.
        title: shown above the figure.
    """

    def __init__(
        self,
        histories: Any,
        *,
        metrics: list[str] | None = None,
        smoothing: list[int] | None = None,
        x: str = "step",
        max_points: int = 400,
        title: str | None = None,
        height: int = 420,
    ) -> None:
        if x not in _X_KEYS:
            raise ValueError(f"x must be one of {_X_KEYS}, got {x!r}")
        if not isinstance(max_points, int) or max_points < 2:
            raise ValueError(f"max_points must be an int >= 2, got {max_points!r}")
        if _is_history(histories):
            histories = {"run": histories}
        if not isinstance(histories, Mapping) or not histories:
            raise TypeError(
                "histories must be a History, its to_dict(), or a non-empty mapping {run name: History}, "
                f"got {type(histories).__name__}"
            )
        for name, h in histories.items():
            if not _is_history(h):
                raise TypeError(
                    f"histories[{name!r}] must be a History or its to_dict(), got {type(h).__name__}"
                )
        self.runs = {str(name): _Run(h, x) for name, h in histories.items()}
        if not any(run.n for run in self.runs.values()):
            raise ValueError("histories are all empty: log at least one step before viewing them")
        self.x_key, self.max_points, self.title = x, max_points, title

        available = list(dict.fromkeys(name for run in self.runs.values() for name in run.series))
        if metrics is None:
            metrics = available
        unknown = [m for m in metrics if m not in available]
        if unknown or not metrics:
            raise ValueError(f"metrics must be a non-empty subset of {available}, got {metrics!r}")
        longest = max(run.n for run in self.runs.values())
        if smoothing is None:
            smoothing = [w for w in _WINDOWS if w == 1 or w <= longest // 2]
        if not smoothing or any(not isinstance(w, int) or isinstance(w, bool) or w < 1 for w in smoothing):
            raise ValueError(f"smoothing must be a non-empty list of positive ints, got {smoothing!r}")
        target = max(1.0, longest / 50)
        default_window = min(smoothing, key=lambda w: abs(np.log(w / target)))
        first = metrics[0]
        positive = all(
            np.all(run.series[first][1][np.isfinite(run.series[first][1])] > 0)
            for run in self.runs.values()
            if first in run.series
        )
        super().__init__(
            {"smoothing": list(smoothing), "metric": list(metrics), "scale": ["log", "linear"]},
            defaults={"smoothing": default_window, "scale": "log" if positive else "linear"},
            layout_params=("scale",),
            labels={"smoothing": "smoothing (steps)", "metric": "metric", "scale": "y axis"},
            height=height,
        )

    def format_value(self, name: str, value: Any) -> str:
        if name == "metric":
            return str(value).replace("_", " ")
        if name == "scale":
            return f"{value} y"
        return super().format_value(name, value)

    def relayout(self, name: str, value: Any) -> dict:
        if name != "scale":
            raise ValueError(f"only 'scale' is a layout parameter of HistoryViewer, got {name!r}")
        return {"yaxis.type": value}

    def figure(self, smoothing: int = 1, metric: str = "loss", scale: str = "log") -> go.Figure:
        fig = go.Figure()
        smoothed_any = False
        for i, (name, run) in enumerate(self.runs.items()):
            if metric not in run.series:
                continue
            color = _COLORS[i % len(_COLORS)]
            x, y, smoothable = run.series[metric]
            if not smoothable or len(x) != run.n:  # evaluations and the LR schedule: drawn as they are
                mode = "lines+markers" if metric.startswith("eval ") else "lines"
                fig.add_scatter(
                    x=x, y=y.astype(np.float32), mode=mode, name=name, line={"color": color, "width": 2}
                )
                continue
            smoothed_any = True
            keep = np.unique(
                np.linspace(0, len(x) - 1, min(len(x), self.max_points)).round().astype(np.int64)
            )
            fig.add_scatter(
                x=x[keep],
                y=y[keep].astype(np.float32),
                mode="lines",
                name=f"{name} (raw)",
                legendgroup=name,
                showlegend=False,
                hoverinfo="skip",
                opacity=0.25,
                line={"color": color, "width": 1},
            )
            fig.add_scatter(
                x=x[keep],
                y=trailing_mean(y, smoothing)[keep].astype(np.float32),
                mode="lines",
                name=name,
                legendgroup=name,
                line={"color": color, "width": 2},
            )
        label = metric.replace("_", " ")
        if smoothed_any:
            label += " (raw)" if smoothing == 1 else f", mean of last {smoothing} steps"
        fig.update_layout(
            title={"text": f"{self.title} · {label}" if self.title else label, "x": 0, "xanchor": "left"},
            xaxis={"title": {"text": _X_LABELS[self.x_key]}},
            yaxis={"title": {"text": metric.replace("_", " ")}, "type": scale},
            height=self.height,
            hovermode="x unified",
            # a few runs: one row above the plot; more would wrap under the control rows at book width, so
            # they get a column to the right of the plot instead
            legend=(
                {"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom"}
                if len(self.runs) <= 4
                else {"orientation": "v", "x": 1.02, "xanchor": "left", "y": 1, "yanchor": "top"}
            ),
            margin={"l": 70, "r": 20, "b": 50},
        )
        return fig
