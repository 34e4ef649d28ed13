"""``ScheduleExplorer``: the forward process of discrete diffusion, schedule by schedule, time by time.

Controls: the time ``t`` (a slider) and the schedule (a row of buttons). Four panels:

* α(t), the probability that a token is still clean, for every schedule (the chosen one bold, a dot at t);
* the NELBO weight w(t) = -α'(t) / (1 - α(t)) of masked diffusion (log scale; 1/t for the log-linear schedule);
* the number of noised tokens of a sequence of length L: expected L p, ± one standard deviation √(L p (1 - p)),
  and the count in the sequence below; p = 1 - α(t) for masking, (1 - α(t))(1 - 1/K) for uniform noise over K
  symbols (a redraw lands on the same symbol with probability 1/K and changes nothing);
* a real sequence corrupted at t by :meth:`minidiff.diffusion.MaskedDiffusion.corrupt` (or
  :meth:`~minidiff.diffusion.UniformDiffusion.corrupt` with ``process="uniform"``).

The corruption draws the same uniform number u_i for position i at every grid point (one seeded generator), so
a token is noised exactly when α(t) ≤ u_i: the masks are nested as t grows, and two schedules with the same α
noise the same tokens. Everything is computed in ``__init__``; the figure only reads it.

    >>> ScheduleExplorer("To be, or not to be, that is the question")        # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from minidiff.diffusion import MaskedDiffusion, UniformDiffusion
from minidiff.diffusion import schedules as schedule_registry
from widgets.base import Widget

__all__ = ["ScheduleExplorer", "display_symbol"]

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
_CLEAN, _NOISED = "#e8eef6", "#4a4a4a"
_SHOWN = {" ": "␣", "\n": "↵", "\t": "⇥"}
_CURVE_POINTS = 200
_DEFAULT_SCHEDULES = ("loglinear", "cosine", "square", "geometric")


def display_symbol(symbol: str) -> str:
    """How a symbol is drawn in a cell: whitespace made visible (␣ ↵ ⇥), everything else as it is."""
    return _SHOWN.get(symbol, symbol)


def _default_sequence() -> str:
    from minidiff.data.text import load_text

    text = load_text("shakespeare")
    start = text.index("To be, or not to be")
    return " ".join(text[start : start + 200].split())[:64]


class ScheduleExplorer(Widget):
    """Noise schedules and the corruption they cause; see the module docstring.

    Args:
        sequence: the sequence to corrupt: a string (one symbol per character) or a list of symbols; at most 128.
            Default: the first 64 characters of the shipped Shakespeare corpus.
        schedules: names from :func:`minidiff.diffusion.schedules.available` (buttons, in this order).
        times: the times on the slider, in [0, 1] (default 0, 0.1, ..., 1).
        process: ``"masked"`` (tokens become MASK) or ``"uniform"`` (tokens are redrawn uniformly from
            ``alphabet``; some land on themselves).
        alphabet: the symbols uniform noise draws from (default: the distinct symbols of ``sequence``).
        wrap: symbols per row in the sequence panel.
        seed: seeds the corruption.
        title: shown above the figure.
    """

    def __init__(
        self,
        sequence: str | Sequence[str] | None = None,
        *,
        schedules: Sequence[str] = _DEFAULT_SCHEDULES,
        times: Sequence[float] | None = None,
        process: str = "masked",
        alphabet: Sequence[str] | None = None,
        wrap: int = 32,
        seed: int = 0,
        title: str | None = None,
        height: int = 620,
    ) -> None:
        symbols = list(_default_sequence() if sequence is None else sequence)
        if not symbols or len(symbols) > 128 or not all(isinstance(s, str) for s in symbols):
            raise ValueError(
                f"sequence must be a string or a list of 1 to 128 symbols (str), got {len(symbols)} items"
            )
        if process not in ("masked", "uniform"):
            raise ValueError(f"process must be 'masked' or 'uniform', got {process!r}")
        names = list(schedules)
        unknown = [n for n in names if n not in schedule_registry.available()]
        if not names or unknown or len(set(names)) != len(names):
            raise ValueError(
                f"schedules must be distinct names from {schedule_registry.available()}, got {list(schedules)!r}"
            )
        times = [round(float(t), 4) for t in (np.linspace(0, 1, 11) if times is None else times)]
        if len(times) < 2 or any(not 0.0 <= t <= 1.0 for t in times) or sorted(set(times)) != times:
            raise ValueError(f"times must be at least two increasing values in [0, 1], got {times!r}")
        if not isinstance(wrap, int) or wrap < 4:
            raise ValueError(f"wrap must be an int >= 4, got {wrap!r}")
        alphabet = list(dict.fromkeys(symbols if alphabet is None else alphabet))
        missing = sorted(set(symbols) - set(alphabet))
        if missing:
            raise ValueError(f"alphabet must contain every symbol of the sequence; missing {missing}")

        self.symbols, self.alphabet, self.process = symbols, alphabet, process
        self.schedule_objects = {name: schedule_registry.get(name) for name in names}
        self.wrap, self.title = wrap, title
        n = len(alphabet)
        x0 = torch.tensor([[alphabet.index(s) for s in symbols]])  # [1, L]
        self.corrupted: dict[tuple[str, float], list[int]] = {}
        for name, schedule in self.schedule_objects.items():
            proc = (
                MaskedDiffusion(n + 1, n, schedule)
                if process == "masked"
                else UniformDiffusion(n + 1, schedule, mask_id=n)
            )
            for t in times:
                z = proc.corrupt(x0, torch.tensor([t]), generator=torch.Generator().manual_seed(seed))
                self.corrupted[(name, t)] = z[0].tolist()
        self.mask_index = n
        self.curve_t = np.linspace(0.0, 1.0, _CURVE_POINTS)
        self.weight_t = np.linspace(0.01, 1.0, _CURVE_POINTS)
        super().__init__(
            {"t": times, "schedule": names},
            defaults={"t": min(times, key=lambda t: abs(t - 0.5))},
            labels={"t": "time t", "schedule": "schedule"},
            height=height,
        )
        self.layout = self._base_layout()

    def change_rate(self, schedule, t):
        """P(a token differs from the clean one at t): 1 - α(t) when masked; (1 - α(t))(1 - 1/K) under uniform
        noise over the K = len(alphabet) symbols (a redraw lands on the same symbol with probability 1/K)."""
        rate = schedule.mask_rate(t)
        return rate if self.process == "masked" else rate * (1 - 1 / len(self.alphabet))

    def format_value(self, name: str, value: Any) -> str:
        if name == "t":
            return f"{value:.2f}"
        return super().format_value(name, value)

    def _base_layout(self) -> dict:
        """The subplot grid, axes and fixed titles (built once with ``make_subplots``; figures copy it)."""
        fig = make_subplots(
            rows=2,
            cols=3,
            specs=[[{}, {}, {}], [{"colspan": 3}, None, None]],
            row_heights=[0.62, 0.38],
            vertical_spacing=0.2,
            horizontal_spacing=0.08,
        )
        titles = (
            "α(t), P(token still clean)",
            "NELBO weight −α′/(1 − α)",
            f"{'masked' if self.process == 'masked' else 'changed'} tokens (of L = {len(self.symbols)})",
        )
        for col, title in enumerate(titles, start=1):
            fig.update_xaxes(title_text="t", title_standoff=4, range=[-0.02, 1.02], row=1, col=col)
            fig.update_yaxes(title_text=title, title_standoff=4, row=1, col=col)
        fig.update_yaxes(range=[-0.03, 1.03], row=1, col=1)
        fig.update_yaxes(type="log", range=[-2, 3], exponentformat="power", row=1, col=2)
        fig.update_yaxes(range=[-0.5, len(self.symbols) + 0.5], row=1, col=3)
        fig.update_xaxes(visible=False, row=2, col=1)
        fig.update_yaxes(visible=False, autorange="reversed", row=2, col=1)
        fig.update_layout(
            height=self.height,
            legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.0, "yanchor": "bottom"},
            margin={"l": 60, "r": 20, "b": 30},
            hovermode="closest",
        )
        noise = "MASK" if self.process == "masked" else "a uniform redraw that changed the token"
        fig.add_annotation(
            text=f"the sequence at time t (dark cells hold {noise}; the dot and the × above mark t)",
            xref="paper",
            yref="paper",
            x=0,
            xanchor="left",
            y=0.38,
            yanchor="bottom",
            yshift=4,
            showarrow=False,
            font={"size": 13},
        )
        return fig.layout.to_plotly_json()

    def figure(self, t: float = 0.5, schedule: str | None = None) -> go.Figure:
        schedule = schedule if schedule is not None else next(iter(self.schedule_objects))
        length = len(self.symbols)
        data: list[dict] = []
        for i, (name, sched) in enumerate(self.schedule_objects.items()):
            chosen, color = name == schedule, _COLORS[i % len(_COLORS)]
            common = {
                "type": "scatter",
                "mode": "lines",
                "name": name,
                "legendgroup": name,
                "opacity": 1.0 if chosen else 0.45,
                "line": {"color": color, "width": 3 if chosen else 1.5},
            }
            data += [
                common | {"x": self.curve_t, "y": sched.alpha(self.curve_t), "xaxis": "x", "yaxis": "y"},
                common
                | {
                    "x": self.weight_t,
                    "y": sched.weight(self.weight_t),
                    "xaxis": "x2",
                    "yaxis": "y2",
                    "showlegend": False,
                },
                common
                | {
                    "x": self.curve_t,
                    "y": length * self.change_rate(sched, self.curve_t),
                    "xaxis": "x3",
                    "yaxis": "y3",
                    "showlegend": False,
                },
            ]
        sched = self.schedule_objects[schedule]
        alpha = sched.alpha(t)
        color = _COLORS[list(self.schedule_objects).index(schedule) % len(_COLORS)]
        rate = self.change_rate(sched, self.curve_t)
        mean, sd = length * rate, np.sqrt(length * rate * (1 - rate))
        data.append(
            {
                "type": "scatter",
                "x": np.concatenate([self.curve_t, self.curve_t[::-1]]),
                "y": np.concatenate([mean + sd, (mean - sd)[::-1]]),
                "fill": "toself",
                "fillcolor": "rgba(120,120,120,0.18)",
                "line": {"width": 0},
                "hoverinfo": "skip",
                "showlegend": False,
                "xaxis": "x3",
                "yaxis": "y3",
            }
        )
        z = self.corrupted[(schedule, t)]
        x0 = [self.alphabet.index(s) for s in self.symbols]
        noised = [zi != xi for zi, xi in zip(z, x0)]
        dot = {
            "type": "scatter",
            "mode": "markers",
            "showlegend": False,
            "marker": {"color": color, "size": 11},
        }
        data.append(
            dot
            | {
                "x": [t],
                "y": [alpha],
                "xaxis": "x",
                "yaxis": "y",
                "hovertemplate": "t=%{x:.2f}, α=%{y:.3f}<extra></extra>",
            }
        )
        if t > 0:
            data.append(
                dot
                | {
                    "x": [t],
                    "y": [sched.weight(t)],
                    "xaxis": "x2",
                    "yaxis": "y2",
                    "hovertemplate": "t=%{x:.2f}, w=%{y:.3g}<extra></extra>",
                }
            )
        data.append(
            dot
            | {
                "x": [t],
                "y": [sum(noised)],
                "xaxis": "x3",
                "yaxis": "y3",
                "marker": {"color": "black", "size": 11, "symbol": "x"},
                "hovertemplate": "t=%{x:.2f}: %{y} noised in this sequence<extra></extra>",
            }
        )
        data.append(self._sequence_heatmap(z, x0, noised))
        layout = dict(self.layout)
        verb = "masked" if self.process == "masked" else "changed"
        heading = f"{schedule} · t = {t:.2f} · α(t) = {alpha:.3f} · {sum(noised)} of {length} tokens {verb}"
        layout["title"] = {
            "text": f"{self.title} · {heading}" if self.title else heading,
            "x": 0,
            "xanchor": "left",
        }
        return go.Figure(data=data, layout=layout)

    def _sequence_heatmap(self, z: list[int], x0: list[int], noised: list[bool]) -> dict:
        n_rows = -(-len(z) // self.wrap)
        cells = np.full((n_rows, self.wrap), np.nan)
        text = np.full((n_rows, self.wrap), "", dtype=object)
        hover = np.full((n_rows, self.wrap), "", dtype=object)
        for i, (zi, xi, is_noised) in enumerate(zip(z, x0, noised)):
            r, c = divmod(i, self.wrap)
            clean = display_symbol(self.alphabet[xi])
            shown = "·" if zi == self.mask_index else display_symbol(self.alphabet[zi])
            cells[r, c] = float(is_noised)
            text[r, c] = shown
            hover[r, c] = (
                f"position {i}: {clean} → {shown}" if is_noised else f"position {i}: {clean} (clean)"
            )
        return {
            "type": "heatmap",
            "z": cells.tolist(),
            "text": text,
            "texttemplate": "%{text}",
            "textfont": {"size": 15},
            "hovertext": hover,
            "hovertemplate": "%{hovertext}<extra></extra>",
            "colorscale": [[0.0, _CLEAN], [1.0, _NOISED]],
            "zmin": 0,
            "zmax": 1,
            "showscale": False,
            "xgap": 2,
            "ygap": 2,
            "xaxis": "x4",
            "yaxis": "y4",
        }
