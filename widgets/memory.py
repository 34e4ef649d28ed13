"""Figures of the memory-and-communication chapter: 8-bit block-wise quantisation, 1-bit compression, and the
division of Muon's work over ranks.

* :class:`QuantizationExplorer` -- one tensor (an optimizer state) quantised block-wise to 8 bits
  (:mod:`minidiff.optim.quantize`) with the dynamic map or a linear one. Slider: the block size B; buttons: the map.
  Top: every |x| against its block's absmax N_b and the smallest non-zero magnitude the block can hold; bottom: the
  median relative error in each block.
* :class:`CompressionPlayer` -- a recorded run of 1-bit compression C[x] = RMS(x)·sign(x) with and without error
  feedback (the chapter records it; the widget only draws). Slider: the step; buttons: the run.
* :func:`quantization_map_figure` -- the 256 values of each map and how many of them fall in each decade.
* :func:`ownership_figure` -- which rank orthogonalises which matrix in distributed Muon, and each rank's share.

And two pictures of how the Triton kernels behind them (chapter 21) lay their work out in memory:

* :func:`program_blocks_figure` -- a 1-D launch: one program per block of ``BLOCK`` elements, masked lanes at the
  ragged end;
* :func:`gram_tiles_figure` -- the symmetric Gram product X Xᵀ: which output tiles are computed, which are mirrored.

    >>> QuantizationExplorer(opt.state[p]["exp_avg_sq"], name="v")    # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from minidiff.optim.quantize import create_dynamic_map, dequantize_blockwise, quantize_blockwise
from widgets.base import Widget

__all__ = [
    "program_blocks_figure",
    "gram_tiles_figure",
    "QuantizationExplorer",
    "CompressionPlayer",
    "quantization_map_figure",
    "ownership_figure",
    "linear_map",
    "newton_schulz_flops",
]

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf")
_GREY = "#9a9a9a"
_BLOCK_SIZES = (64, 128, 256, 512, 1024, 2048, 4096)


def linear_map(signed: bool = True) -> torch.Tensor:
    """256 evenly spaced values on [−1, 1] (signed) or [0, 1]: the map a plain 8-bit linear quantiser uses."""
    return torch.linspace(-1.0 if signed else 0.0, 1.0, 256)


def _as_numpy(x: Any, name: str) -> np.ndarray:
    array = (
        x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64)
    )
    if array.size == 0 or not np.isfinite(array).all():
        raise ValueError(f"{name} must be a non-empty array of finite numbers")
    return array


_TITLE = {"x": 0, "xref": "paper", "xanchor": "left"}  # aligned with the plot area, never clipped at the edge


def _key(*entries: tuple[str, str]) -> str:
    """A compact colour key for a subplot title: ``(colour, text)`` pairs as coloured spans."""
    return "   ".join(f"<span style='color:{color}'>{text}</span>" for color, text in entries)


def _steps_line(edges: np.ndarray, values: np.ndarray) -> tuple[list, list]:
    """x, y of a horizontal segment per block (blocks [edges[b], edges[b+1]) at height values[b])."""
    xs = np.repeat(edges, 2)[1:-1]
    ys = np.repeat(values, 2)
    return xs.tolist(), ys.tolist()


# --------------------------------------------------------------------------------------------- 8-bit quantisation
class QuantizationExplorer(Widget):
    """Block-wise 8-bit quantisation of one tensor: what each block can represent, and the error it makes.

    Args:
        x: the tensor (flattened; an optimizer state such as Adam's ``exp_avg_sq``).
        signed: use signed maps (default: whether ``x`` has negative entries).
        block_sizes: the block sizes B offered on the slider.
        maps: ``{name: 256-value float32 map}`` offered as buttons; default the dynamic map
            (:func:`minidiff.optim.quantize.create_dynamic_map`) and :func:`linear_map`.
        name: what ``x`` is, for the titles.
        max_points: at most this many elements drawn in the top panel (evenly spaced; errors use all of them).
        default_block_size: the slider's starting value (default 2048, the paper's B, when offered).
    """

    def __init__(
        self,
        x: Any,
        *,
        signed: bool | None = None,
        block_sizes: Sequence[int] = _BLOCK_SIZES,
        maps: Mapping[str, Any] | None = None,
        name: str = "x",
        max_points: int = 6000,
        default_block_size: int | None = None,
        height: int = 560,
    ) -> None:
        values = _as_numpy(x, "x").reshape(-1)
        if not block_sizes or any(
            not isinstance(b, int) or isinstance(b, bool) or b < 1 for b in block_sizes
        ):
            raise ValueError(f"block_sizes must be positive ints, got {list(block_sizes)!r}")
        if not isinstance(max_points, int) or max_points < 10:
            raise ValueError(f"max_points must be an int >= 10, got {max_points!r}")
        signed = bool((values < 0).any()) if signed is None else signed
        if maps is None:
            maps = {"dynamic": create_dynamic_map(signed=signed), "linear": linear_map(signed)}
        if not isinstance(maps, Mapping) or not maps:
            raise ValueError("maps must be a non-empty mapping {name: 256-value map}")
        self.maps = {str(k): torch.as_tensor(v, dtype=torch.float32).reshape(-1) for k, v in maps.items()}
        for map_name, code in self.maps.items():
            if code.numel() != 256:
                raise ValueError(f"maps[{map_name!r}] must hold 256 values, got {code.numel()}")
        default_block_size = default_block_size or (2048 if 2048 in block_sizes else block_sizes[0])
        super().__init__(
            {"block_size": list(block_sizes), "map": list(self.maps)},
            defaults={"block_size": default_block_size},
            labels={"block_size": "block size B"},
            height=height,
        )
        self.name, self.values, self.n = name, values, values.size
        shown = np.unique(np.linspace(0, self.n - 1, min(self.n, max_points)).round().astype(np.int64))
        self._shown, self._shown_abs = shown, np.abs(values[shown])
        positive = self._shown_abs[self._shown_abs > 0]
        self._y_floor = float(positive.min()) / 3 if positive.size else 1e-12
        self.stats = {
            (b, m): self._quantize(b, code)
            for b in self.params["block_size"]
            for m, code in self.maps.items()
        }

    def _quantize(self, block_size: int, code: torch.Tensor) -> dict:
        x = torch.from_numpy(self.values).float()
        q, absmax = quantize_blockwise(x, code, block_size)
        x_tilde = dequantize_blockwise(q, absmax, code, block_size).double().numpy()
        x64 = self.values
        blocks = math.ceil(self.n / block_size)
        pad = blocks * block_size - self.n
        rel = np.abs(x_tilde - x64) / np.where(x64 != 0, np.abs(x64), np.nan)
        rel_blocks = np.pad(rel, (0, pad), constant_values=np.nan).reshape(blocks, block_size)
        all_nan = np.isnan(rel_blocks).all(axis=1)
        median = np.full(blocks, np.nan)
        median[~all_nan] = np.nanmedian(rel_blocks[~all_nan], axis=1)
        flushed = (x_tilde == 0) & (x64 != 0)
        smallest = float(np.abs(code.double().numpy())[code.numpy() != 0].min())
        return {
            "absmax": absmax.double().numpy(),
            "floor": absmax.double().numpy() * smallest,  # smallest non-zero magnitude a block can hold
            "median": median,
            "rel_l2": float(np.linalg.norm(x_tilde - x64) / max(np.linalg.norm(x64), 1e-300)),
            "flushed": float(flushed.sum() / max((x64 != 0).sum(), 1)),
        }

    def figure(self, block_size: int = 2048, map: str = "dynamic") -> go.Figure:  # noqa: A002 -- the control's name
        s = self.stats[(block_size, map)]
        edges = np.minimum(np.arange(len(s["absmax"]) + 1) * block_size, self.n)
        fig = make_subplots(
            rows=2,
            cols=1,
            shared_xaxes=True,
            vertical_spacing=0.1,
            row_heights=[0.62, 0.38],
            subplot_titles=(
                _key(
                    (_GREY, f"● |{self.name}|"),
                    (_COLORS[0], "— block absmax N<sub>b</sub>"),
                    (
                        _COLORS[1],
                        "- - N<sub>b</sub> × smallest |Q| > 0: smaller values round to 0 or up to it",
                    ),
                ),
                "median relative error |x̃ − x| / |x| in each block",
            ),
        )
        fig.add_scatter(
            x=self._shown,
            y=np.maximum(self._shown_abs, self._y_floor),
            mode="markers",
            marker={"size": 3, "color": _GREY, "opacity": 0.5},
            name=f"|{self.name}|",
            row=1,
            col=1,
        )
        xs, ys = _steps_line(edges, np.maximum(s["absmax"], self._y_floor))
        fig.add_scatter(
            x=xs,
            y=ys,
            mode="lines",
            line={"color": _COLORS[0], "width": 2},
            name="block absmax N_b",
            row=1,
            col=1,
        )
        xs, ys = _steps_line(edges, np.maximum(s["floor"], self._y_floor))
        fig.add_scatter(
            x=xs,
            y=ys,
            mode="lines",
            line={"color": _COLORS[1], "width": 2, "dash": "dash"},
            name="N_b × smallest non-zero |Q|",
            row=1,
            col=1,
        )
        xs, ys = _steps_line(edges, np.nan_to_num(s["median"], nan=0.0))
        fig.add_scatter(
            x=xs,
            y=ys,
            mode="lines",
            fill="tozeroy",
            line={"color": _COLORS[2], "width": 1.5},
            name="median relative error",
            showlegend=False,
            row=2,
            col=1,
        )
        fig.update_yaxes(
            type="log", title_text=f"|{self.name}|", exponentformat="power", dtick=1, row=1, col=1
        )
        fig.update_yaxes(type="log", title_text="relative error", exponentformat="power", row=2, col=1)
        fig.update_xaxes(title_text="element index (flattened)", row=2, col=1)
        fig.update_layout(
            title={
                "text": f"{map} map, B = {block_size}: L2 error {s['rel_l2']:.2%}, "
                f"{s['flushed']:.1%} of non-zero entries → 0",
                **_TITLE,
            },
            height=self.height,
            showlegend=False,
            margin={"l": 70, "r": 20, "b": 50},
        )
        return fig

    def format_value(self, name: str, value: Any) -> str:
        return str(value)


# --------------------------------------------------------------------------------------------- 1-bit compression
class CompressionPlayer(Widget):
    """A recorded run of 1-bit compression, step by step, with and without error feedback.

    Args:
        runs: ``{label: {"signal": [T, n], "sent": [T, n], "distance": [T]}}``: what each step should have sent
            (``signal``, e.g. the gradient), what the compressor sent (``sent``), and how far the iterate was from
            the optimum after the step.
        reference: extra ``{label: distance [T]}`` curves drawn in the bottom panel (e.g. uncompressed).
        steps: the steps offered on the slider (1-based; default about 15 log-spaced steps).
        title: shown above the figure.
    """

    def __init__(
        self,
        runs: Mapping[str, Mapping[str, Any]],
        *,
        reference: Mapping[str, Any] | None = None,
        steps: Sequence[int] | None = None,
        title: str | None = None,
        height: int = 560,
    ) -> None:
        if not isinstance(runs, Mapping) or not runs:
            raise ValueError("runs must be a non-empty mapping {label: {'signal', 'sent', 'distance'}}")
        self.runs: dict[str, dict[str, np.ndarray]] = {}
        for label, run in runs.items():
            missing = {"signal", "sent", "distance"} - set(run)
            if missing:
                raise ValueError(f"runs[{label!r}] lacks {sorted(missing)}")
            signal, sent = _as_numpy(run["signal"], "signal"), _as_numpy(run["sent"], "sent")
            distance = _as_numpy(run["distance"], "distance").reshape(-1)
            if signal.ndim != 2 or signal.shape != sent.shape or len(distance) != len(signal):
                raise ValueError(
                    f"runs[{label!r}]: signal and sent must be [T, n] and distance [T], got "
                    f"{signal.shape}, {sent.shape} and {distance.shape}"
                )
            self.runs[str(label)] = {
                "signal": signal,
                "sent": sent,
                "error": np.cumsum(signal - sent, axis=0),  # Σ_{s ≤ t} (signal − sent): what is still owed
                "distance": distance,
            }
        self.reference = {str(k): _as_numpy(v, "reference").reshape(-1) for k, v in (reference or {}).items()}
        total = min(len(r["distance"]) for r in self.runs.values())
        if steps is None:
            steps = sorted({int(round(s)) for s in np.geomspace(1, total, 15)})
        steps = [int(s) for s in steps]
        if any(not 1 <= s <= total for s in steps):
            raise ValueError(f"steps must lie in [1, {total}], got {steps}")
        super().__init__({"step": steps, "run": list(self.runs)}, height=height)
        self.title = title
        self.total = total
        shown = [r[key][s - 1] for r in self.runs.values() for s in steps for key in ("signal", "sent")]
        self._bar_range = 1.1 * max(float(np.abs(np.asarray(shown)).max()), 1e-12)
        self._error_range = {  # per run: "owed" is bounded with feedback and grows without, so scales differ
            label: 1.1 * max(float(np.abs(np.asarray([r["error"][s - 1] for s in steps])).max()), 1e-12)
            for label, r in self.runs.items()
        }

    def figure(self, step: int = 1, run: str | None = None) -> go.Figure:
        run = run if run is not None else next(iter(self.runs))
        r = self.runs[run]
        coords = np.arange(r["signal"].shape[1])
        fig = make_subplots(
            rows=2,
            cols=2,
            specs=[[{"colspan": 2}, None], [{}, {}]],
            vertical_spacing=0.2,
            horizontal_spacing=0.1,
            row_heights=[0.45, 0.55],
            subplot_titles=(
                "",
                f"step {step}: " + _key((_GREY, "signal"), (_COLORS[0], "sent, RMS·sign")),
                _key((_COLORS[1], "owed so far, Σ (signal − sent)")),
            ),
        )
        t = np.arange(1, self.total + 1)
        curves = {**{k: v["distance"] for k, v in self.runs.items()}, **self.reference}
        for i, (label, curve) in enumerate(curves.items()):
            chosen = label == run
            fig.add_scatter(
                x=t,
                y=curve[: self.total],
                mode="lines",
                name=label,
                line={"color": _COLORS[(i + 2) % len(_COLORS)], "width": 3 if chosen else 1.5},
                opacity=1.0 if chosen or label in self.reference else 0.5,
                row=1,
                col=1,
            )
        fig.add_vline(x=step, line={"color": "black", "width": 1, "dash": "dot"}, row=1, col=1)
        bars = dict(showlegend=False, row=2)
        fig.add_bar(x=coords, y=r["signal"][step - 1], name="signal", marker_color=_GREY, col=1, **bars)
        fig.add_bar(
            x=coords, y=r["sent"][step - 1], name="sent (RMS·sign)", marker_color=_COLORS[0], col=1, **bars
        )
        fig.add_bar(x=coords, y=r["error"][step - 1], name="owed", marker_color=_COLORS[1], col=2, **bars)
        fig.update_yaxes(
            title_text="distance to optimum", type="log", exponentformat="power", dtick=1, row=1, col=1
        )
        fig.update_xaxes(title_text="step", type="log", dtick=1, row=1, col=1)
        fig.update_yaxes(range=[-self._bar_range, self._bar_range], row=2, col=1)
        fig.update_yaxes(range=[-self._error_range[run], self._error_range[run]], row=2, col=2)
        fig.update_xaxes(title_text="coordinate", row=2, col=1)
        fig.update_xaxes(title_text="coordinate", row=2, col=2)
        heading = f"{run} · step {step}"
        fig.update_layout(
            title={"text": f"{self.title} · {heading}" if self.title else heading, **_TITLE},
            barmode="group",
            height=self.height,
            legend={"x": 0.01, "y": 0.6, "yanchor": "bottom", "bgcolor": "rgba(255,255,255,0.7)"},
            margin={"l": 60, "r": 20, "b": 50},
        )
        return fig


# --------------------------------------------------------------------------------------------- plain figures
def quantization_map_figure(maps: Mapping[str, Any], *, height: int = 380) -> go.Figure:
    """Each map's 256 values against their index (left) and the number of values per decade of magnitude
    (right; zero is counted apart): a log-scale density of the map."""
    if not isinstance(maps, Mapping) or not maps:
        raise ValueError("maps must be a non-empty mapping {name: 256-value map}")
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.12,
        subplot_titles=("the 256 values, sorted", "values per decade of |Q|"),
    )
    decades = np.arange(-8, 1)  # bins [10^d, 10^(d+1)), d = -8 .. -1, and the value 1 in the last
    labels = [f"[1e{d}, 1e{d + 1})" for d in decades[:-1]] + ["1"]
    for i, (name, code) in enumerate(maps.items()):
        values = _as_numpy(code, f"maps[{name!r}]").reshape(-1)
        color = _COLORS[i % len(_COLORS)]
        fig.add_scatter(
            x=np.arange(values.size),
            y=values,
            mode="markers",
            marker={"size": 4, "color": color},
            name=name,
            legendgroup=name,
            row=1,
            col=1,
        )
        magnitude = np.abs(values[values != 0])
        exponent = np.floor(np.log10(magnitude)).clip(decades[0], 0).astype(int)
        counts = [int((exponent == d).sum()) for d in decades]
        fig.add_bar(
            x=labels,
            y=counts,
            name=name,
            legendgroup=name,
            showlegend=False,
            marker_color=color,
            text=[c or "" for c in counts],
            textposition="outside",
            textfont={"size": 10},
            cliponaxis=False,
            row=1,
            col=2,
        )
    fig.update_xaxes(title_text="index", row=1, col=1)
    fig.update_yaxes(title_text="value Q[index]", row=1, col=1)
    fig.update_xaxes(title_text="decade of |Q| (non-zero values)", tickangle=-40, row=1, col=2)
    fig.update_yaxes(title_text="values in the decade", type="log", dtick=1, range=[-0.1, 2.8], row=1, col=2)
    fig.update_layout(
        barmode="group",
        uniformtext={"minsize": 10, "mode": "show"},
        height=height,
        template="plotly_white",
        legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.12, "yanchor": "bottom"},
        margin={"l": 60, "r": 20, "t": 70, "b": 90},
    )
    return fig


def newton_schulz_flops(shape: Sequence[int], steps: int = 5) -> int:
    """FLOPs of ``steps`` quintic Newton–Schulz steps on a k×n matrix (k ≤ n after transposing): 4k²n + 2k³ each."""
    k, n = sorted(int(s) for s in shape[-2:])
    return steps * (4 * k * k * n + 2 * k**3)


def ownership_figure(
    names: Sequence[str], shapes: Sequence[Sequence[int]], owners: Sequence[int], *, height: int | None = None
) -> go.Figure:
    """Which rank orthogonalises which matrix (bars: each matrix's Newton–Schulz FLOPs, coloured by its owner),
    and each rank's total (right)."""
    if not (len(names) == len(shapes) == len(owners)) or not names:
        raise ValueError(
            f"names, shapes and owners must be non-empty and of one length, got {len(names)}, {len(shapes)}, "
            f"{len(owners)}"
        )
    world_size = max(owners) + 1
    flops = [newton_schulz_flops(s) / 1e6 for s in shapes]
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.7, 0.3],
        horizontal_spacing=0.16,
        subplot_titles=("owner of each hidden matrix", "work per rank"),
    )
    for rank in range(world_size):
        mine = [i for i, o in enumerate(owners) if o == rank]
        color = _COLORS[rank % len(_COLORS)]
        fig.add_bar(
            y=[f"{names[i]} {tuple(shapes[i])}" for i in mine],
            x=[flops[i] for i in mine],
            orientation="h",
            name=f"rank {rank}",
            legendgroup=f"rank {rank}",
            marker_color=color,
            row=1,
            col=1,
        )
        total = sum(flops[i] for i in mine)
        fig.add_bar(
            x=[f"rank {rank}"],
            y=[total],
            name=f"rank {rank}",
            legendgroup=f"rank {rank}",
            showlegend=False,
            marker_color=color,
            text=[f"{len(mine)} matrices<br>{total:.0f} MFLOP"],
            textposition="outside",
            textangle=0,
            cliponaxis=False,
            row=1,
            col=2,
        )
    fig.update_yaxes(
        categoryorder="array",
        categoryarray=[f"{n} {tuple(s)}" for n, s in zip(names, shapes)][::-1],
        row=1,
        col=1,
    )
    fig.update_xaxes(title_text="MFLOP per step (5 Newton–Schulz steps)", row=1, col=1)
    totals = [sum(f for f, o in zip(flops, owners) if o == rank) for rank in range(world_size)]
    fig.update_yaxes(title_text="MFLOP per step", range=[0, 1.3 * max(totals)], row=1, col=2)
    fig.update_layout(
        uniformtext={"minsize": 10, "mode": "show"},
        height=height or 120 + 26 * len(names),
        template="plotly_white",
        legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 1.08, "yanchor": "bottom"},
        margin={"l": 20, "r": 20, "t": 80, "b": 50},
    )
    return fig


# --------------------------------------------------------------------------------------------- Triton grids (ch. 21)
def program_blocks_figure(n: int, block: int, *, height: int | None = None) -> go.Figure:
    """The lanes of a 1-D Triton launch over ``n`` elements: one row per program (``pid``), one column per lane;
    lane ``j`` of program ``pid`` holds element ``pid·block + j``, and lanes past ``n`` are masked off."""
    if not isinstance(n, int) or n < 1 or not isinstance(block, int) or block < 1:
        raise ValueError(f"n and block must be positive ints, got n={n!r}, block={block!r}")
    programs = math.ceil(n / block)
    element = np.arange(programs)[:, None] * block + np.arange(block)[None, :]
    active = (element < n).astype(float)
    fig = go.Figure(
        go.Heatmap(
            z=active,
            x=np.arange(block),
            y=[f"pid {p}" for p in range(programs)],
            customdata=element,
            colorscale=[[0, "#f3d0d0"], [1, _COLORS[0]]],
            zmin=0,
            zmax=1,
            showscale=False,
            xgap=0,
            ygap=3,
            hovertemplate="%{y}, lane %{x}: element %{customdata}<extra></extra>",
        )
    )
    for p in range(programs):
        used = int(active[p].sum())
        text = f"elements {p * block}–{p * block + used - 1}" + (
            f", {block - used} lanes masked" if used < block else ""
        )
        fig.add_annotation(x=block / 2, y=p, text=text, showarrow=False, font={"color": "white", "size": 12})
    fig.update_layout(
        title={"text": f"{n} elements, BLOCK = {block}: {programs} programs; mask = offs < n", **_TITLE},
        xaxis={"title": {"text": "lane: tl.arange(0, BLOCK)"}, "showgrid": False},
        yaxis={"autorange": "reversed", "showgrid": False},
        height=height or 110 + 45 * programs,
        template="plotly_white",
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
    )
    return fig


def gram_tiles_figure(k: int, tile: int, *, height: int = 420) -> go.Figure:
    """The output tiles of A = X Xᵀ (``k × k``) as the Gram kernel's programs see them: program (i, j) computes tile
    (i, j) when j ≥ i and stores it twice (itself and, transposed, tile (j, i)); programs with j < i return at once."""
    if not isinstance(k, int) or k < 1 or not isinstance(tile, int) or tile < 1:
        raise ValueError(f"k and tile must be positive ints, got k={k!r}, tile={tile!r}")
    tiles = math.ceil(k / tile)
    i, j = np.meshgrid(np.arange(tiles), np.arange(tiles), indexing="ij")
    kind = np.where(j > i, 2, np.where(j == i, 1, 0))  # 2 computed and mirrored, 1 diagonal, 0 mirror only
    labels = [
        [
            f"computes,<br>stores ᵀ at ({c}, {r})"
            if c > r
            else ("computes" if c == r else f"returns at once<br>(filled by ({c}, {r}))")
            for c in range(tiles)
        ]
        for r in range(tiles)
    ]
    fig = go.Figure(
        go.Heatmap(
            z=kind,
            x=[f"j={c}" for c in range(tiles)],
            y=[f"i={r}" for r in range(tiles)],
            colorscale=[[0, "#eeeeee"], [0.5, _COLORS[2]], [1, _COLORS[0]]],
            zmin=0,
            zmax=2,
            showscale=False,
            xgap=3,
            ygap=3,
            hoverinfo="skip",
        )
    )
    if tiles <= 8:
        for r in range(tiles):
            for c in range(tiles):
                fig.add_annotation(
                    x=c, y=r, text=labels[r][c], showarrow=False,
                    font={"size": 10, "color": "black" if kind[r, c] == 0 else "white"},
                )  # fmt: skip
    computing = tiles * (tiles + 1) // 2
    fig.update_layout(
        title={
            "text": f"A = X Xᵀ, k = {k}, {tile}×{tile} tiles: {computing} of {tiles * tiles} programs compute",
            **_TITLE,
        },
        xaxis={"title": {"text": "tile column j (pid 1)"}, "showgrid": False, "constrain": "domain"},
        yaxis={
            "title": {"text": "tile row i (pid 0)"},
            "autorange": "reversed",
            "scaleanchor": "x",
            "showgrid": False,
        },
        height=height,
        template="plotly_white",
        margin={"l": 70, "r": 20, "t": 50, "b": 50},
    )
    return fig
