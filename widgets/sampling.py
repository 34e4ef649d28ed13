"""``SamplingOrderPlayer``: in which order a diffusion sampler fills a sequence in, step by step.

Takes one or several :class:`~minidiff.diffusion.Trace` objects (what every sampler of
:mod:`minidiff.diffusion.sampling` returns) and draws, for one sequence of each, side by side:

* **the order picture** -- positions (x) × steps (y, time running down): the cell at row j, column i holds the
  token that position i shows after j steps, coloured by the step that wrote it (one colour scale for all panels);
  an empty cell is still MASK, a grey one is part of the prompt. A left-to-right sampler draws a diagonal staircase,
  a confidence-ordered one fills the easy positions first, the ancestral sampler scatters its choices at random.
  Under remasking (ReMDM) a cell can empty again; for uniform-state diffusion every position holds a token from the
  start and a cell is coloured once the sampler has redrawn it (empty until then).
* **the canvas strip** below it: the sequence after the chosen number of steps, token by token, with the
  confidence p_θ(token) at the time it was written on hover.

Control: ``step`` (a slider; in JupyterLab also a play button) -- the number of sampling steps taken so far; the
rows below it are faded and the strip shows that canvas. Panels with fewer steps stop at their last one. The order
picture is the same at every step, so the static face stores it once.

    >>> tokens, trace = sample_confidence(model, process, batch, steps=8)         # doctest: +SKIP
    >>> SamplingOrderPlayer({"confidence": trace, "ancestral": trace2}, symbols=task.vocab)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from minidiff.diffusion import Trace
from widgets.base import Widget

__all__ = ["SamplingOrderPlayer", "written_steps"]

_MAX_PANELS = 4
_PROMPT, _MASKED = "#c9ced6", "#eceff3"
_SPECIAL_SHOWN = {"<pad>": "_", "<bos>": "^", "<eos>": "$", "<mask>": "·", " ": "␣", "\n": "↵", "\t": "⇥"}


def written_steps(states: np.ndarray, fixed: np.ndarray, mask_id: int | None) -> np.ndarray:
    """``[S, L]`` float: after step j (row j - 1), the 1-based step that wrote the token position i holds then;
    NaN where the position holds MASK, is fixed (prompt), or still holds its initial (uniform-noise) token.

    ``states`` is one sequence's ``[S + 1, L]`` canvas history (``trace.states[:, row]``), ``fixed`` its ``[L]``
    prompt mask. Unlike ``Trace.commit_step`` (the final write only) this follows remasking and rewriting.
    """
    states = np.asarray(states)
    fixed = np.asarray(fixed, dtype=bool)
    n_steps, length = states.shape[0] - 1, states.shape[1]
    written = np.zeros(length)  # 0: never written
    out = np.full((n_steps, length), np.nan)
    for k in range(n_steps):
        written[states[k + 1] != states[k]] = k + 1
        shown = ~fixed & (written > 0)
        if mask_id is not None:
            shown &= states[k + 1] != mask_id
        out[k, shown] = written[shown]
    return out


def _symbol_function(symbols: Any) -> Callable[[int], str]:
    if symbols is None:
        return str
    if callable(symbols) and not hasattr(symbols, "symbols"):
        return lambda i: str(symbols(i))
    table = list(getattr(symbols, "symbols", symbols))  # a minidiff Vocab or a sequence of str
    if not table or not all(isinstance(s, str) for s in table):
        raise ValueError(
            "symbols must be None, a minidiff Vocab, a sequence of str (symbol of each id) or a callable "
            f"id -> str, got {type(symbols).__name__}"
        )
    return lambda i: table[i] if 0 <= i < len(table) else f"#{i}"


def _shown(symbol: str) -> str:
    return _SPECIAL_SHOWN.get(symbol, symbol)


def _named(traces: Any) -> dict[str, Trace]:
    if isinstance(traces, Trace):
        traces = [traces]
    if isinstance(traces, Mapping):
        named = {str(name): trace for name, trace in traces.items()}
    elif isinstance(traces, Sequence) and not isinstance(traces, str):
        named = {}
        for i, trace in enumerate(traces):
            name = getattr(trace, "sampler", "") or f"trace {i}"
            named[name if name not in named else f"{name} ({i})"] = trace
    else:
        raise ValueError(
            f"traces must be a Trace, a list of Traces or a dict name -> Trace, got {type(traces).__name__}"
        )
    bad = [name for name, trace in named.items() if not isinstance(trace, Trace)]
    if bad:
        raise ValueError(f"traces must hold minidiff.diffusion.Trace objects; not a Trace: {bad}")
    if not 1 <= len(named) <= _MAX_PANELS:
        raise ValueError(f"traces must hold 1 to {_MAX_PANELS} traces (one panel each), got {len(named)}")
    return named


class SamplingOrderPlayer(Widget):
    """Sampling orders side by side; see the module docstring.

    Args:
        traces: a :class:`~minidiff.diffusion.Trace`, a list of them (named by their ``sampler``) or a dict
            ``{name: trace}``; at most four.
        row: which sequence of each trace's batch to show.
        symbols: how token ids are written: a :class:`~minidiff.data.Vocab`, a list of symbols indexed by id, a
            callable ``id -> str``, or ``None`` (the ids).
        max_frames: at most this many positions of the step slider (always including 0 and the last step).
        title: shown above the figure.
        height: of the figure in pixels.
    """

    def __init__(
        self,
        traces: Trace | Sequence[Trace] | Mapping[str, Trace],
        *,
        row: int = 0,
        symbols: Any = None,
        max_frames: int = 33,
        title: str | None = None,
        height: int = 520,
    ) -> None:
        named = _named(traces)
        if not isinstance(max_frames, int) or isinstance(max_frames, bool) or max_frames < 2:
            raise ValueError(f"max_frames must be an int >= 2, got {max_frames!r}")
        batch = min(trace.states.shape[1] for trace in named.values())
        if not isinstance(row, int) or isinstance(row, bool) or not 0 <= row < batch:
            raise ValueError(
                f"row must be an int in [0, {batch}) (the smallest batch among the traces), got {row!r}"
            )
        symbol = _symbol_function(symbols)
        self.title = title
        self.panels: dict[str, dict] = {}
        for name, trace in named.items():
            states = trace.states[:, row].numpy()
            fixed = trace.fixed[row].numpy().astype(bool)
            if states.shape[0] < 2:
                raise ValueError(f"traces[{name!r}] has no sampling step to show")
            confidence = trace.confidence[row].numpy()
            text = np.vectorize(lambda i: _shown(symbol(int(i))), otypes=[object])(states)
            self.panels[name] = {
                "states": states,
                "text": text,
                "fixed": fixed,
                "mask_id": trace.mask_id,
                "written": written_steps(states, fixed, trace.mask_id),
                "confidence": confidence,
                "commit_step": trace.commit_step[row].numpy(),
                "nfe": trace.nfe,
                "n_steps": trace.n_steps,
            }
        self.max_steps = max(p["n_steps"] for p in self.panels.values())
        frames = np.unique(
            np.linspace(0, self.max_steps, min(max_frames, self.max_steps + 1)).round().astype(int)
        )
        super().__init__(
            {"step": [int(f) for f in frames]},
            defaults={"step": int(frames[len(frames) // 2])},
            labels={"step": "steps taken"},
            height=height,
        )
        self.layout = self._base_layout()
        self.constant = {name: self._order_traces(c, name) for c, name in enumerate(self.panels)}

    # ------------------------------------------------------------------------------------------ layout
    def _base_layout(self) -> dict:
        n = len(self.panels)
        fig = make_subplots(
            rows=2,
            cols=n,
            row_heights=[0.8, 0.2],
            vertical_spacing=0.06,
            horizontal_spacing=0.05 if n > 1 else 0.02,
            subplot_titles=[
                f"<b>{name}</b><br>{p['n_steps']} steps · NFE {p['nfe']}" for name, p in self.panels.items()
            ]
            + [""] * n,
        )
        for c, p in enumerate(self.panels.values(), start=1):
            length = p["states"].shape[1]
            xrange = [-0.5, length - 0.5]
            fig.update_xaxes(range=xrange, showgrid=False, zeroline=False, row=1, col=c)
            fig.update_yaxes(
                range=[self.max_steps + 0.5, 0.5],
                showgrid=False,
                zeroline=False,
                title_text="after step" if c == 1 else None,
                row=1,
                col=c,
            )
            fig.update_xaxes(range=xrange, visible=False, row=2, col=c)
            fig.update_yaxes(range=[0.5, -0.5], visible=False, row=2, col=c)
        fig.update_layout(
            height=self.height,
            margin={"l": 60, "r": 20, "b": 30, "t": 110},
            coloraxis={
                "colorscale": "Viridis",
                "cmin": 1,
                "cmax": max(self.max_steps, 2),
                "colorbar": {"title": {"text": "written at step", "side": "right"}, "len": 0.75, "y": 0.62},
            },
            hovermode="closest",
            plot_bgcolor="white",
        )
        fig.update_annotations(font_size=12)  # the panel titles
        return fig.layout.to_plotly_json()

    def format_value(self, name: str, value: Any) -> str:
        return str(value)

    # ------------------------------------------------------------------------------------------ traces
    def _axes(self, c: int) -> tuple[str, str, str, str]:
        n = len(self.panels)
        top, bottom = c + 1, n + c + 1
        name = lambda axis, i: axis if i == 1 else f"{axis}{i}"  # noqa: E731
        return name("x", top), name("y", top), name("x", bottom), name("y", bottom)

    def _order_traces(self, c: int, name: str) -> list[dict]:
        """The traces that do not depend on the step: the order picture, the prompt cells, the strip's backdrop."""
        p = self.panels[name]
        x, y, xs, ys = self._axes(c)
        n_steps, length = p["written"].shape
        steps = np.arange(1, n_steps + 1)
        hover = np.empty((n_steps, length), dtype=object)
        for j in range(n_steps):
            for i in range(length):
                w = p["written"][j, i]
                token = p["text"][j + 1, i]
                hover[j, i] = f"after step {j + 1}, position {i}: {token}" + (
                    "" if math.isnan(w) else f" (written at step {int(w)})"
                )
        prompt = np.where(p["fixed"][None, :], 1.0, np.nan).repeat(n_steps, 0)
        return [
            {
                "type": "heatmap",
                "z": prompt,
                "x": np.arange(length),
                "y": steps,
                "colorscale": [[0, _PROMPT], [1, _PROMPT]],
                "showscale": False,
                "hoverinfo": "skip",
                "xaxis": x,
                "yaxis": y,
            },
            {
                "type": "heatmap",
                "z": p["written"],
                "x": np.arange(length),
                "y": steps,
                "coloraxis": "coloraxis",
                "hovertext": hover,
                "hovertemplate": "%{hovertext}<extra></extra>",
                "xaxis": x,
                "yaxis": y,
            },
            {
                "type": "heatmap",
                "z": np.ones((1, length)),
                "x": np.arange(length),
                "y": [0],
                "colorscale": [[0, _MASKED], [1, _MASKED]],
                "showscale": False,
                "hoverinfo": "skip",
                "xgap": 2,
                "xaxis": xs,
                "yaxis": ys,
            },
        ]

    def figure(self, step: int = 0) -> go.Figure:
        if not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f"step must be an int >= 0, got {step!r}")
        data: list[dict] = []
        for c, (name, p) in enumerate(self.panels.items()):
            x, y, xs, ys = self._axes(c)
            k = min(int(step), p["n_steps"])
            length = p["states"].shape[1]
            data += self.constant[name]
            if k < self.max_steps:  # fade the rows not reached yet
                data.append(
                    {
                        "type": "scatter",
                        "x": [-0.5, length - 0.5, length - 0.5, -0.5, -0.5],
                        "y": [k + 0.5, k + 0.5, self.max_steps + 0.5, self.max_steps + 0.5, k + 0.5],
                        "fill": "toself",
                        "fillcolor": "rgba(255,255,255,0.8)",
                        "mode": "lines",
                        "line": {"width": 0},
                        "hoverinfo": "skip",
                        "showlegend": False,
                        "xaxis": x,
                        "yaxis": y,
                    }
                )
            data.append(
                {
                    "type": "scatter",
                    "x": [-0.5, length - 0.5],
                    "y": [k + 0.5, k + 0.5],
                    "mode": "lines",
                    "line": {"color": "#d62728", "width": 2},
                    "hoverinfo": "skip",
                    "showlegend": False,
                    "xaxis": x,
                    "yaxis": y,
                }
            )
            written = p["written"][k - 1] if k > 0 else np.full(length, np.nan)
            masked = (
                p["states"][k] == p["mask_id"] if p["mask_id"] is not None else np.zeros(length, dtype=bool)
            )
            text = np.where(masked, "", p["text"][k])
            hover = []
            for i in range(length):
                if p["fixed"][i]:
                    hover.append(f"position {i}: {p['text'][k, i]} (prompt)")
                elif masked[i]:
                    hover.append(f"position {i}: MASK")
                elif math.isnan(written[i]):
                    hover.append(f"position {i}: {p['text'][k, i]} (initial noise)")
                else:
                    final = p["commit_step"][i] == written[i] - 1 and not math.isnan(p["confidence"][i])
                    conf = f", p = {p['confidence'][i]:.2f}" if final else ""
                    hover.append(f"position {i}: {p['text'][k, i]} (step {int(written[i])}{conf})")
            strip = np.where(p["fixed"], np.nan, written)
            data.append(
                {
                    "type": "heatmap",
                    "z": [strip],
                    "x": np.arange(length),
                    "y": [0],
                    "coloraxis": "coloraxis",
                    "text": [text],
                    "texttemplate": "%{text}",
                    "textfont": {"size": 13 if length <= 48 else 10},
                    "hovertext": [hover],
                    "hovertemplate": "%{hovertext}<extra></extra>",
                    "xgap": 2,
                    "xaxis": xs,
                    "yaxis": ys,
                }
            )
            if p["fixed"].any():
                data.append(
                    {
                        "type": "heatmap",
                        "z": [np.where(p["fixed"], 1.0, np.nan)],
                        "x": np.arange(length),
                        "y": [0],
                        "colorscale": [[0, _PROMPT], [1, _PROMPT]],
                        "showscale": False,
                        "text": [np.where(p["fixed"], p["text"][k], "")],
                        "texttemplate": "%{text}",
                        "textfont": {"size": 13 if length <= 48 else 10},
                        "hoverinfo": "skip",
                        "xgap": 2,
                        "xaxis": xs,
                        "yaxis": ys,
                    }
                )
        layout = dict(self.layout)
        heading = (
            f"after {step} of {self.max_steps} steps · columns: positions · rows: steps · "
            "strip: the canvas after the chosen step"
        )
        layout["title"] = {
            "text": f"{self.title} · {heading}" if self.title else heading,
            "x": 0,
            "xanchor": "left",
        }
        return go.Figure(data=data, layout=layout)

    # ------------------------------------------------------------------------------------------ live face
    def live(self):
        """The base live face plus a play button driving the step slider."""
        import ipywidgets as W

        box = super().live()
        slider = box.controls.get("step")
        if slider is not None:
            play = W.Play(min=0, max=len(self.params["step"]) - 1, interval=400, value=slider.index)
            W.jslink((play, "value"), (slider, "index"))
            box.children = (W.HBox([play, *box.children[0].children]), *box.children[1:])
            box.play = play
        return box
