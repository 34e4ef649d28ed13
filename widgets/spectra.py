r"""``SpectrumViewer``: the singular-value spectrum of one layer's update, gradient or weight over training, for one
run or several (one per optimizer) side by side, from :meth:`minidiff.analysis.spectra.SpectrumRecorder.to_dict`.

Two panels share the step slider (the animation):

* **left** -- the spectrum at the chosen step: σ_i against its index i (largest first), every run overlaid. By
  default each spectrum is divided by its largest value, σ_i/σ_1, so runs whose updates differ in scale by orders
  of magnitude (learning rates, shape factors) can be compared by *shape*: a flat line at 1 is an orthogonal
  update (Muon's UVᵀ), a steep fall is a low-rank one (Adam's, dominated by a few directions).
* **right** -- the stable rank ‖X‖_F²/‖X‖_2² = Σσ_i²/σ_1² of the same matrix over the whole run, a vertical dotted
  line marking the chosen step; the horizontal dotted line is its ceiling min(m, n), reached when all singular
  values are equal.

The static face has the step slider and one row of buttons: the layer *or* the kind may list several values, not
both (fix the other in the constructor); every run is always overlaid (choose them with ``runs``). A layout
button switches the spectrum's y axis between log and linear.

    >>> recorder = SpectrumRecorder(model, every=10)              # doctest: +SKIP
    >>> SpectrumViewer({"AdamW": rec_adamw, "Muon": rec_muon}, layer="blocks.0.qkv.weight", kind="update")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from widgets.base import Widget

__all__ = ["SpectrumViewer", "KIND_LABELS"]

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f")
#: How each recorded kind is named on the figure.
KIND_LABELS = {
    "update": "update ΔW",
    "gradient": "gradient G",
    "weight": "weight W",
    "momentum": "momentum M",
}
_RECORD_KEYS = ("layers", "shapes", "kinds", "steps", "singular_values", "stable_rank")
_SPLIT = 0.58  # the spectrum panel takes the left 58 % of the width


def _as_record(name: str, record: Any) -> dict:
    if hasattr(record, "to_dict") and not isinstance(record, Mapping):
        record = record.to_dict()
    if not isinstance(record, Mapping):
        raise TypeError(
            f"records[{name!r}] must be a SpectrumRecorder or its to_dict(), got {type(record).__name__}"
        )
    missing = [k for k in _RECORD_KEYS if k not in record]
    if missing:
        raise ValueError(f"records[{name!r}] is not a SpectrumRecorder.to_dict() result: it lacks {missing}")
    if not record["steps"]:
        raise ValueError(
            f"records[{name!r}] holds no steps: attach the recorder to the optimizer and train before viewing"
        )
    return dict(record)


def _is_single_record(obj: Any) -> bool:
    return (isinstance(obj, Mapping) and "singular_values" in obj) or (
        hasattr(obj, "to_dict") and hasattr(obj, "spectra")
    )


def _choices(name: str, value: Any, available: list[str], default: str) -> list[str]:
    """``value`` (None, one name or a list of names) as a non-empty list of names from ``available``."""
    if value is None:
        return [default]
    values = [value] if isinstance(value, str) else list(value) if isinstance(value, Sequence) else None
    if not values or not all(isinstance(v, str) for v in values):
        raise ValueError(
            f"{name} must be a name or a non-empty list of names from {available}, got {value!r}"
        )
    unknown = [v for v in values if v not in available]
    if unknown:
        raise ValueError(f"{name} must be in {available} (recorded by every run), got {unknown}")
    return list(dict.fromkeys(values))


def _scatter(**kwargs: Any) -> dict:
    return {"type": "scatter", **kwargs}


def _frames(steps: list[int], max_frames: int) -> list[int]:
    """At most ``max_frames`` of ``steps``, evenly spaced, first and last included."""
    if len(steps) <= max_frames:
        return steps
    keep = np.unique(np.linspace(0, len(steps) - 1, max_frames).round().astype(int))
    return [steps[i] for i in keep]


class SpectrumViewer(Widget):
    """Spectra and stable rank of one layer through training, runs overlaid; see the module docstring.

    Args:
        records: ``{run name: SpectrumRecorder.to_dict()}`` (or recorders), or a single record.
        layer: the layer shown, or a list of layers (then a row of buttons picks one); default: the first layer
            every run recorded.
        kind: ``"update"``, ``"gradient"``, ``"weight"`` or ``"momentum"``, or a list of them (then a row of
            buttons picks one); default ``"update"`` when recorded. ``layer`` and ``kind`` cannot both be lists.
        runs: the runs overlaid (default: all, in the order given).
        normalize: divide each spectrum by its largest singular value (compare shapes across optimizers).
        max_frames: at most this many recorded steps on the slider (evenly spaced, first and last kept).
        title: shown before the figure's own title.
    """

    def __init__(
        self,
        records: Any,
        *,
        layer: str | Sequence[str] | None = None,
        kind: str | Sequence[str] | None = None,
        runs: Sequence[str] | None = None,
        normalize: bool = True,
        max_frames: int = 40,
        title: str | None = None,
        height: int = 430,
    ) -> None:
        if _is_single_record(records):
            records = {"run": records}
        if not isinstance(records, Mapping) or not records:
            raise TypeError(
                "records must be a SpectrumRecorder.to_dict() result or a non-empty mapping "
                f"{{run name: record}}, got {type(records).__name__}"
            )
        all_records = {str(name): _as_record(str(name), rec) for name, rec in records.items()}
        if runs is None:
            runs = list(all_records)
        elif isinstance(runs, str) or not runs or any(r not in all_records for r in runs):
            raise ValueError(f"runs must be a non-empty list of names from {list(all_records)}, got {runs!r}")
        self.records = {name: all_records[name] for name in runs}
        if not isinstance(normalize, bool):
            raise TypeError(f"normalize must be True or False, got {normalize!r}")
        if not isinstance(max_frames, int) or isinstance(max_frames, bool) or max_frames < 2:
            raise ValueError(f"max_frames must be an int >= 2, got {max_frames!r}")
        self.normalize, self.title = normalize, title

        first = next(iter(self.records.values()))
        layers = [n for n in first["layers"] if all(n in r["layers"] for r in self.records.values())]
        kinds = [k for k in first["kinds"] if all(k in r["kinds"] for r in self.records.values())]
        if not layers or not kinds:
            raise ValueError("the runs share no recorded layer and kind; record the same layers in every run")
        layers = _choices("layer", layer, layers, layers[0])
        kinds = _choices("kind", kind, kinds, "update" if "update" in kinds else kinds[0])
        if len(layers) > 1 and len(kinds) > 1:
            raise ValueError(
                "layer and kind cannot both list several values: the static face has one slider (the step) and "
                f"one row of buttons; fix one of them, e.g. kind={kinds[0]!r}"
            )
        for name in layers:
            shapes = {tuple(r["shapes"][name]) for r in self.records.values()}
            if len(shapes) > 1:
                raise ValueError(f"layer {name!r} has different shapes in different runs: {sorted(shapes)}")
        self.shapes = {name: tuple(first["shapes"][name]) for name in layers}
        all_steps = sorted({int(s) for r in self.records.values() for s in r["steps"]})
        super().__init__(
            {
                "step": _frames(all_steps, max_frames),
                "layer": layers,
                "kind": kinds,
                "scale": ["log", "linear"],
            },
            defaults={"step": _frames(all_steps, max_frames)[-1]},
            layout_params=("scale",),
            labels={"scale": "y axis"},
            height=height,
        )

    def format_value(self, name: str, value: Any) -> str:
        if name == "kind":
            return KIND_LABELS.get(value, str(value))
        if name == "scale":
            return f"{value} y"
        return super().format_value(name, value)

    def relayout(self, name: str, value: Any) -> dict:
        if name != "scale":
            raise ValueError(f"only 'scale' is a layout parameter of SpectrumViewer, got {name!r}")
        return {"yaxis.type": value}

    # ------------------------------------------------------------------------------------------- data
    def spectrum(self, run: str, layer: str, kind: str, step: int) -> tuple[int, np.ndarray] | None:
        """(recorded step, singular values) of ``run`` at the last recorded step ≤ ``step``; None if none."""
        record = self.records[run]
        steps = np.asarray(record["steps"])
        i = int(np.searchsorted(steps, step, side="right")) - 1
        if i < 0:
            return None
        values = record["singular_values"][kind][layer][i]
        return None if values is None else (int(steps[i]), np.asarray(values, dtype=np.float64))

    def stable_ranks(self, run: str, layer: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, stable ranks) of ``run``; missing entries are NaN."""
        record = self.records[run]
        ranks = [np.nan if r is None else float(r) for r in record["stable_rank"][kind][layer]]
        return np.asarray(record["steps"], dtype=np.int64), np.asarray(ranks, dtype=np.float64)

    # ------------------------------------------------------------------------------------------- figure
    def figure(self, step: int = 0, layer: str = "", kind: str = "update", scale: str = "log") -> go.Figure:
        layer = layer or self.params["layer"][0]
        m, n = self.shapes[layer][0], int(np.prod(self.shapes[layer][1:]))
        traces: list[dict] = []  # built as dicts and validated once by go.Figure: ~3x faster than add_scatter
        for i, run in enumerate(self.records):
            color = _COLORS[i % len(_COLORS)]
            found = self.spectrum(run, layer, kind, step)
            if found is not None:
                at, s = found
                y = s / s[0] if self.normalize and s[0] > 0 else s
                traces.append(
                    _scatter(
                        x=np.arange(1, len(s) + 1, dtype=np.int32),
                        y=y.astype(np.float32),
                        mode="lines+markers",
                        marker={"size": 4},
                        line={"color": color, "width": 2},
                        name=run,
                        legendgroup=run,
                        hovertemplate=f"{run}, step {at}<br>i=%{{x}}: %{{y:.3g}}<extra></extra>",
                    )
                )
            steps, ranks = self.stable_ranks(run, layer, kind)
            traces.append(
                _scatter(
                    x=steps,
                    y=ranks.astype(np.float32),
                    mode="lines",
                    line={"color": color, "width": 2},
                    name=run,
                    legendgroup=run,
                    showlegend=found is None,
                    xaxis="x2",
                    yaxis="y2",
                    hovertemplate=f"{run}<br>step %{{x}}: stable rank %{{y:.3g}}<extra></extra>",
                )
            )
        ceiling = min(m, n)
        traces.append(
            _scatter(
                x=[self.params["step"][0], self.params["step"][-1]],
                y=[ceiling, ceiling],
                mode="lines",
                line={"color": "#888", "dash": "dot", "width": 1},
                name=f"min(m, n) = {ceiling}",
                showlegend=False,
                hoverinfo="skip",
                xaxis="x2",
                yaxis="y2",
            )
        )
        what = KIND_LABELS.get(kind, kind)
        heading = f"{what} of {layer} [{m}×{n}] · step {step}"
        y_title = "σ<sub>i</sub> / σ<sub>1</sub>" if self.normalize else "σ<sub>i</sub>"
        layout = dict(
            title={"text": f"{self.title} · {heading}" if self.title else heading, "x": 0, "xanchor": "left"},
            xaxis={"domain": [0, _SPLIT - 0.04], "title": {"text": "index i (largest singular value first)"}},
            yaxis={
                "type": scale,
                "minorloglabels": "none",  # powers of ten only: no small-digit clutter between them
                "title": {"text": y_title},
                "exponentformat": "power",
            },
            xaxis2={"domain": [_SPLIT + 0.06, 1], "anchor": "y2", "title": {"text": "training step"}},
            yaxis2={
                "anchor": "x2",
                "rangemode": "tozero",
                "range": [0, ceiling * 1.08],
                "title": {"text": "stable rank  Σσ²/σ₁²", "standoff": 4},
            },
            shapes=[  # the chosen step on the stable-rank panel (a shape, not a trace: the static face stays small)
                {
                    "type": "line",
                    "xref": "x2",
                    "yref": "y2 domain",
                    "x0": step,
                    "x1": step,
                    "y0": 0,
                    "y1": 1,
                    "line": {"color": "#444", "dash": "dot", "width": 1},
                }
            ],
            annotations=[
                {
                    "text": f"ceiling min(m, n) = {ceiling}",
                    "xref": "x2 domain",
                    "yref": "y2",
                    "x": 0.02,
                    "y": ceiling,
                    "xanchor": "left",
                    "yanchor": "bottom",
                    "showarrow": False,
                    "font": {"size": 11, "color": "#666"},
                }
            ],
            height=self.height,
            # A vertical legend right of the panels: above them it would collide with the static face's button
            # rows on a narrow page (the book's ~700 px column).
            legend={
                "x": 1.02,
                "xanchor": "left",
                "y": 1,
                "yanchor": "top",
                "font": {"size": 11},
                "tracegroupgap": 4,
            },
            margin={"l": 70, "r": 40 + 7 * max(len(run) for run in self.records), "b": 50},
            hovermode="closest",
        )
        return go.Figure(data=traces, layout=layout)
