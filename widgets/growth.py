"""``GrowthPlayer``: a FlexMDM sample growing by insertion and filling in by unmasking, step by step.

It draws a :class:`~minidiff.diffusion.sampling.flexible.FlexTrace` (the chapter samples; the widget only draws):

* **top**, the sequence as a strip of slots: empty (past the current length), MASK, a clean token, an anchor
  (prompt / subgoal), and this step's news -- masks just inserted, tokens just unmasked;
* **bottom left**, for a maze (:class:`~minidiff.data.tasks.maze_subgoal.MazeSubgoalTask`), the grid with its
  walls, the numbered subgoals and the path known so far (consecutive unmasked cells joined when they are
  neighbours; a mask or a jump breaks the line), or else the length and the number of masks against the step;
* **bottom right**, the two schedules together, in the paper's time τ = 1 - t (0 empty, 1 clean): the fraction of
  tokens inserted, β(τ), and the fraction unmasked, β(τ) · P(clean | inserted), from
  :meth:`~minidiff.diffusion.flexible.FlexibleDiffusion.marginals`, with this sample's own fractions up to the step.

Slider: the step (at most ``max_frames`` of them, evenly spread); buttons: which sample of the batch.

    >>> tokens, trace = sample_flexible(model, process, prompts, steps=32)   # doctest: +SKIP
    >>> GrowthPlayer(trace, process=process, maze=task, rows=[0, 1, 2])      # doctest: +SKIP
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from minidiff.data.vocab import Vocab
from widgets.base import Widget

__all__ = ["GrowthPlayer", "SLOT_KINDS"]

#: slot kinds of the strip, in colour-scale order
SLOT_KINDS = ("empty", "mask", "token", "anchor", "inserted now", "unmasked now")
_KIND_COLORS = ("#f4f4f4", "#b8b8b8", "#6a9fd4", "#f28e2b", "#e15759", "#59a14f")
_SCHEDULE_COLORS = {"inserted": "#e15759", "unmasked": "#1f77b4"}


def _stepped_colorscale(colors: Sequence[str]) -> list:
    n, scale = len(colors), []
    for i, color in enumerate(colors):
        scale += [[i / n, color], [(i + 1) / n, color]]
    return scale


class GrowthPlayer(Widget):
    """Step through a FlexMDM sampling trace; see the module docstring.

    Args:
        trace: a :class:`~minidiff.diffusion.sampling.flexible.FlexTrace`.
        process: the :class:`~minidiff.diffusion.flexible.FlexibleDiffusion` it sampled (for the schedules panel).
        maze: the maze task of the samples, to draw them on its grid.
        symbols: a :class:`~minidiff.data.Vocab` or ``id -> str`` for the strip's labels (default: the maze's
            ``row,col`` or the id).
        rows: the samples offered as buttons (default: the first).
        max_frames: most steps on the slider.
    """

    def __init__(
        self,
        trace,
        *,
        process=None,
        maze=None,
        symbols: Vocab | Callable[[int], str] | None = None,
        rows: Sequence[int] = (0,),
        max_frames: int = 33,
        height: int = 620,
    ) -> None:
        if getattr(trace, "lengths", None) is None or getattr(trace, "inserted", None) is None:
            raise TypeError(
                "trace must be a FlexTrace (from minidiff.diffusion.sampling.flexible.sample_flexible)"
            )
        batch = trace.states.shape[1]
        rows = [int(r) for r in rows]
        if not rows or any(not 0 <= r < batch for r in rows):
            raise ValueError(f"rows must be a non-empty list of sample indices in [0, {batch}), got {rows}")
        if not isinstance(max_frames, int) or max_frames < 2:
            raise ValueError(f"max_frames must be an int >= 2, got {max_frames!r}")
        n_steps = trace.n_steps
        frames = sorted({int(round(k)) for k in np.linspace(0, n_steps, min(max_frames, n_steps + 1))})
        super().__init__({"step": frames, "sample": rows}, height=height)
        self.trace, self.maze, self.n_steps = trace, maze, n_steps
        self.pad_id, self.mask_id = trace.params.get("pad_id"), trace.mask_id
        self.max_length = trace.states.shape[-1]
        self.label = self._labeler(symbols, maze)
        self.schedules = self._schedule_curves(process)

    # ------------------------------------------------------------------------------------------ precomputed
    @staticmethod
    def _labeler(symbols, maze) -> Callable[[int], str]:
        if isinstance(symbols, Vocab):
            return lambda i: symbols.symbols[i]
        if callable(symbols):
            return symbols
        if maze is not None:

            def cell_label(i: int) -> str:
                cell = maze.cell(i)
                return f"{cell[0]},{cell[1]}" if cell is not None else str(i)

            return cell_label
        return str

    @staticmethod
    def _schedule_curves(process) -> dict | None:
        if process is None:
            return None
        tau = np.linspace(0.0, 1.0, 101)
        present, clean = process.marginals(np.clip(1.0 - tau, 0.0, 1.0), points=801)
        present = np.asarray(present, dtype=float)
        return {"tau": tau, "inserted": present, "unmasked": present * np.asarray(clean, dtype=float)}

    def _kinds(self, k: int, row: int) -> tuple[np.ndarray, list[str]]:
        """Slot kinds and labels of sample ``row`` after step ``k``."""
        state = self.trace.states[k, row].tolist()
        length = int(self.trace.lengths[k, row])
        anchors = self.trace.anchor_states[k, row].tolist()
        inserted = self.trace.inserted[k - 1, row].tolist() if k > 0 else [False] * len(state)
        unmasked = self.trace.unmasked[k - 1, row].tolist() if k > 0 else [False] * len(state)
        kinds, labels = [], []
        for i, token in enumerate(state):
            if i >= length:
                kinds.append(0)
                labels.append("")
            elif token == self.mask_id:
                kinds.append(4 if inserted[i] else 1)
                labels.append("·")
            else:
                kinds.append(3 if anchors[i] else 5 if unmasked[i] else 2)
                labels.append(self.label(int(token)))
        return np.asarray(kinds), labels

    # ------------------------------------------------------------------------------------------ figure
    def _base_layout(self) -> dict:
        """The subplot grid, axes and titles, built once (plotly objects are slow; figures are made from dicts)."""
        fig = make_subplots(
            rows=2,
            cols=2,
            specs=[[{"colspan": 2}, None], [{}, {}]],
            row_heights=[0.2, 0.8],
            vertical_spacing=0.12,
            horizontal_spacing=0.12,
            subplot_titles=(
                "the sequence",
                "the path on the maze" if self.maze is not None else "length and masks",
                "insertion and unmasking schedules (paper time τ = 1 − t)",
            ),
        )
        fig.update_xaxes(range=[-0.5, self.max_length - 0.5], title_text="position", row=1, col=1)
        fig.update_yaxes(visible=False, row=1, col=1)
        if self.maze is not None:
            size = self.maze.size
            fig.update_xaxes(range=[-0.5, size - 0.5], visible=False, row=2, col=1)
            fig.update_yaxes(
                range=[size - 0.5, -0.5], visible=False, scaleanchor="x2", scaleratio=1, row=2, col=1
            )
        else:
            fig.update_xaxes(title_text="step", row=2, col=1)
            fig.update_yaxes(title_text="length (red), masks (grey)", row=2, col=1)
        fig.update_xaxes(range=[0, 1], title_text="τ (0 empty → 1 clean)", row=2, col=2)
        fig.update_yaxes(range=[-0.02, 1.05], title_text="fraction of the final tokens", row=2, col=2)
        fig.update_layout(
            showlegend=True,
            legend={"orientation": "h", "y": -0.08, "x": 0, "yanchor": "top"},
            margin={"l": 70, "r": 20, "b": 40},
        )
        return fig.layout.to_plotly_json()

    def figure(self, step: int = 0, sample: int | None = None) -> go.Figure:
        row = self.params["sample"][0] if sample is None else sample
        if not hasattr(self, "_layout"):
            self._layout = self._base_layout()
        layout = copy.deepcopy(self._layout)
        layout["annotations"][0]["text"] = (
            f"the sequence after step {step} of {self.n_steps}: length {int(self.trace.lengths[step, row])}"
        )
        tau = step / max(self.n_steps, 1)
        layout["shapes"] = [
            {"type": "line", "xref": "x3", "yref": "y3", "x0": tau, "x1": tau, "y0": 0, "y1": 1.05,
             "line": {"color": "#999", "dash": "dot"}}
        ]  # fmt: skip
        traces = self._strip(step, row)
        traces += self._maze(step, row) if self.maze is not None else self._counts(step, row)
        traces += self._schedule_panel(step, row)
        return go.Figure(data=traces, layout=layout)

    def _strip(self, step: int, row: int) -> list[dict]:
        kinds, labels = self._kinds(step, row)
        show_text = self.max_length <= 40
        strip = {
            "type": "heatmap", "xaxis": "x", "yaxis": "y", "z": kinds[None, :].tolist(),
            "hovertext": [[f"slot {i}: {SLOT_KINDS[k]} {lab}" for i, (k, lab) in enumerate(zip(kinds, labels))]],
            "hoverinfo": "text", "colorscale": _stepped_colorscale(_KIND_COLORS), "zmin": -0.5,
            "zmax": len(SLOT_KINDS) - 0.5, "showscale": False, "xgap": 2,
        }  # fmt: skip
        if show_text:
            strip |= {"text": [labels], "texttemplate": "%{text}", "textfont": {"size": 9}}
        keys = [
            {
                "type": "scatter",
                "xaxis": "x",
                "yaxis": "y",
                "x": [None],
                "y": [None],
                "mode": "markers",
                "name": kind,
                "marker": {
                    "symbol": "square",
                    "size": 12,
                    "color": color,
                    "line": {"color": "#777", "width": 1},
                },
            }  # fmt: skip
            for kind, color in zip(SLOT_KINDS, _KIND_COLORS)
        ]
        return [strip, *keys]

    def _maze(self, step: int, row: int) -> list[dict]:
        maze = self.maze
        walls = [[0 if open_ else 1 for open_ in r] for r in maze.grid]
        grid = {
            "type": "heatmap", "xaxis": "x2", "yaxis": "y2", "z": walls, "showscale": False, "hoverinfo": "skip",
            "colorscale": [[0, "#ffffff"], [1, "#2b2b2b"]], "xgap": 1, "ygap": 1,
        }  # fmt: skip
        state = self.trace.states[step, row].tolist()[: int(self.trace.lengths[step, row])]
        unmasked = self.trace.unmasked[step - 1, row].tolist() if step > 0 else [False] * len(state)
        xs, ys, new_x, new_y, previous = [], [], [], [], None
        for i, token in enumerate(state):
            cell = None if token == self.mask_id else maze.cell(token)
            if cell is None:
                previous = None
                continue
            adjacent = previous is not None and abs(previous[0] - cell[0]) + abs(previous[1] - cell[1]) == 1
            if xs and not adjacent:  # a mask, a non-cell or a jump (a gap still to fill) breaks the line
                xs.append(None)
                ys.append(None)
            xs.append(cell[1])
            ys.append(cell[0])
            if unmasked[i]:
                new_x.append(cell[1])
                new_y.append(cell[0])
            previous = cell
        path = {
            "type": "scatter", "xaxis": "x2", "yaxis": "y2", "x": xs, "y": ys, "mode": "lines+markers",
            "name": "path so far", "line": {"color": _KIND_COLORS[2], "width": 4},
            "marker": {"size": 7, "color": _KIND_COLORS[2]},
        }  # fmt: skip
        news = {
            "type": "scatter", "xaxis": "x2", "yaxis": "y2", "x": new_x, "y": new_y, "mode": "markers",
            "showlegend": False, "name": "unmasked this step",
            "marker": {"size": 11, "color": _KIND_COLORS[5], "line": {"color": "white", "width": 1}},
        }  # fmt: skip
        anchors = [maze.cell(t) for t, a in zip(state, self.trace.anchor_states[step, row].tolist()) if a]
        subgoals = {
            "type": "scatter", "xaxis": "x2", "yaxis": "y2", "x": [c[1] for c in anchors],
            "y": [c[0] for c in anchors], "mode": "markers+text", "name": "subgoals",
            "text": [str(i + 1) for i in range(len(anchors))], "textfont": {"color": "white", "size": 10},
            "marker": {"size": 17, "color": _KIND_COLORS[3], "line": {"color": "black", "width": 1}},
            "hoverinfo": "text", "hovertext": [f"subgoal {i + 1}" for i in range(len(anchors))],
        }  # fmt: skip
        return [grid, path, news, subgoals]

    def _counts(self, step: int, row: int) -> list[dict]:
        steps = list(range(self.n_steps + 1))
        lengths = self.trace.lengths[:, row].tolist()
        masks = (self.trace.states[:, row] == self.mask_id).sum(-1).tolist()
        out = []
        for name, values, color in (("length", lengths, "#e15759"), ("masks", masks, "#7f7f7f")):
            out.append(
                {"type": "scatter", "xaxis": "x2", "yaxis": "y2", "x": steps, "y": values, "mode": "lines",
                 "name": name, "line": {"color": color}, "showlegend": False}
            )  # fmt: skip
            out.append(
                {"type": "scatter", "xaxis": "x2", "yaxis": "y2", "x": [step], "y": [values[step]],
                 "mode": "markers", "marker": {"color": color, "size": 10}, "showlegend": False,
                 "hoverinfo": "skip"}
            )  # fmt: skip
        return out

    def _schedule_panel(self, step: int, row: int) -> list[dict]:
        out = []
        if self.schedules is not None:
            for key, label in (("inserted", "β(τ): inserted"), ("unmasked", "unmasked")):
                out.append(
                    {"type": "scatter", "xaxis": "x3", "yaxis": "y3", "x": self.schedules["tau"].tolist(),
                     "y": self.schedules[key].tolist(), "mode": "lines", "name": label,
                     "line": {"color": _SCHEDULE_COLORS[key], "width": 2}}
                )  # fmt: skip
        lengths = self.trace.lengths[:, row].numpy().astype(float)
        anchors = self.trace.anchor_states[:, row].sum(-1).numpy().astype(float)
        masks = (self.trace.states[:, row] == self.mask_id).sum(-1).numpy().astype(float)
        total = max(lengths[-1] - anchors[-1], 1.0)
        tau = np.arange(self.n_steps + 1) / max(self.n_steps, 1)
        fractions = {"inserted": (lengths - anchors) / total, "unmasked": (lengths - anchors - masks) / total}
        for key, values in fractions.items():
            out.append(
                {"type": "scatter", "xaxis": "x3", "yaxis": "y3", "x": tau[: step + 1].tolist(),
                 "y": values[: step + 1].tolist(), "mode": "markers", "name": f"this sample: {key}",
                 "showlegend": False, "marker": {"color": _SCHEDULE_COLORS[key], "size": 6,
                                                 "symbol": "circle-open"}}
            )  # fmt: skip
        return out

    def __repr__(self) -> str:
        return f"GrowthPlayer(steps={self.n_steps}, samples={self.params['sample']}, maze={self.maze is not None})"

    def format_value(self, name: str, value: Any) -> str:
        return f"#{value}" if name == "sample" else super().format_value(name, value)
