"""``BenchExplorer``: the optimizer benchmark's tuned final losses and speedups, one model size at a time.

A slider picks the model size; buttons switch between the **final loss** against training tokens (every
optimizer tuned, bars from the best to the worst seed) and the **speedup** over AdamW against the data ratio
(the tokens AdamW needs to reach the optimizer's final loss, divided by the optimizer's tokens; open triangles
mark cells beyond AdamW's budgets, drawn at their bound). The figures are those of
:mod:`minidiff.train.bench_plots`, computed from the summary of a sweep (no training here).

    >>> BenchExplorer(BenchResult.load("tutorials/data/14_tiny/results.json"))     # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from minidiff.train.bench_plots import loss_figure, speedup_figure
from widgets.base import Widget

__all__ = ["BenchExplorer"]

_VIEWS = ("final loss", "speedup")
_REQUIRED = ("optimizer", "size", "ratio", "tokens", "loss_mean", "loss_min", "loss_max", "speedup_mean")


class BenchExplorer(Widget):
    """Final loss and speedup per model size.

    Args:
        result: a :class:`~minidiff.train.bench_sweep.BenchResult`, or its ``summary()`` rows.
        baseline: the optimizer the speedups are measured against.
        sizes: the sizes offered on the slider (default: every size of the summary, in its order).
        view: the view shown first, ``"final loss"`` or ``"speedup"``.
    """

    def __init__(
        self,
        result: Any,
        *,
        baseline: str = "adamw",
        sizes: Sequence[str] | None = None,
        view: str = "speedup",
        height: int = 440,
    ) -> None:
        summary = result.summary() if hasattr(result, "summary") else list(result)
        if not summary or not all(isinstance(r, dict) for r in summary):
            raise ValueError("result must be a BenchResult or a non-empty list of its summary() rows")
        missing = [k for k in _REQUIRED if k not in summary[0]]
        if missing:
            raise ValueError(f"summary rows lack the column(s) {missing}; pass BenchResult.summary() rows")
        available = list(dict.fromkeys(r["size"] for r in summary))
        sizes = list(sizes) if sizes is not None else available
        unknown = [s for s in sizes if s not in available]
        if unknown or not sizes:
            raise ValueError(f"sizes must be a non-empty subset of {available}, got {sizes}")
        if view not in _VIEWS:
            raise ValueError(f"view must be one of {_VIEWS}, got {view!r}")
        if baseline not in {r["optimizer"] for r in summary}:
            raise ValueError(f"baseline {baseline!r} is not among the optimizers of the summary")
        self.summary, self.baseline = summary, baseline
        super().__init__(
            {"size": sizes, "view": list(_VIEWS)},
            defaults={"size": sizes[-1], "view": view},
            labels={"size": "model size", "view": "view"},
            height=height,
        )

    def figure(self, size: str = "", view: str = "speedup") -> go.Figure:
        size = size or self.params["size"][-1]
        draw = speedup_figure if view == "speedup" else loss_figure
        return draw(self.summary, size, self.baseline)
