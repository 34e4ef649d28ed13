r"""``SingularValueMap``: how Newton–Schulz iterations move singular values, one iteration at a time.

An odd-polynomial iteration X ← aX + b(XXᵀ)X + c(XXᵀ)²X keeps the singular vectors of X and maps every singular
value through the same scalar polynomial p(σ) = aσ + bσ³ + cσ⁵. After k iterations the singular values of
G/‖G‖_F have gone through p_k ∘ … ∘ p_1 (:func:`minidiff.optim.linalg.scalar_map`), so one curve per iteration
count tells the whole story of Muon's orthogonalisation: where it sends small singular values (the slope at 0),
and how close to 1 -- the polar factor UVᵀ -- everything ends up.

Controls: the iteration count k (slider), the coefficient set (buttons: Muon's quintic, the modded-nanogpt
schedule, Polar Express, the classical cubic) and a log/linear x axis. Optionally the singular values of a real
matrix (``sigmas``) are drawn as dots riding the curve.

    >>> SingularValueMap(sigmas=singular_values(G))      # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go

from widgets.base import Widget

if TYPE_CHECKING:
    import torch

# torch and minidiff.optim.linalg are imported inside the methods that compute: importing this module stays light.

__all__ = ["SingularValueMap", "COEFFICIENT_LABELS"]

#: Button labels and legend names of the coefficient sets of :data:`minidiff.optim.linalg.COEFFICIENTS`.
COEFFICIENT_LABELS = {
    "muon": "Muon quintic",
    "modded": "modded-nanogpt",
    "polar_express": "Polar Express",
    "cubic": "cubic",
}


class SingularValueMap(Widget):
    """The composed scalar map σ ↦ p_k ∘ … ∘ p_1(σ) of Newton–Schulz iterations; see the module docstring.

    Args:
        coefficients: names from :data:`minidiff.optim.linalg.COEFFICIENTS` offered as buttons.
        max_steps: the slider runs over k = 0, 1, ..., max_steps iterations.
        sigmas: optional singular values of a matrix (any scale); they are divided by their root sum of
            squares (the matrix's Frobenius norm, as Newton–Schulz normalises) and drawn on the curve.
        sample_label: the legend entry of those dots.
        sigma_min: the smallest normalised input drawn (the x axis spans [sigma_min, 1]).
        n_points: points per curve.
    """

    def __init__(
        self,
        coefficients: Sequence[str] = ("muon", "modded", "polar_express", "cubic"),
        *,
        max_steps: int = 8,
        sigmas: torch.Tensor | Sequence[float] | None = None,
        sample_label: str = "singular values of the sample matrix",
        sigma_min: float = 1e-3,
        n_points: int = 200,
        title: str | None = None,
        height: int = 420,
    ) -> None:
        import torch

        from minidiff.optim.linalg import COEFFICIENTS

        if (
            isinstance(coefficients, str)
            or not coefficients
            or any(c not in COEFFICIENTS for c in coefficients)
        ):
            raise ValueError(
                f"coefficients must be a non-empty list of names from {sorted(COEFFICIENTS)}, got {coefficients!r}"
            )
        if not isinstance(max_steps, int) or isinstance(max_steps, bool) or not 1 <= max_steps <= 50:
            raise ValueError(f"max_steps must be an int in [1, 50], got {max_steps!r}")
        if not isinstance(sigma_min, (int, float)) or not 0 < sigma_min < 1:
            raise ValueError(f"sigma_min must be a number in (0, 1), got {sigma_min!r}")
        if not isinstance(n_points, int) or n_points < 2:
            raise ValueError(f"n_points must be an int >= 2, got {n_points!r}")
        self.x = np.logspace(np.log10(sigma_min), 0, n_points)
        self.sample = None
        if sigmas is not None:
            s = torch.as_tensor(sigmas, dtype=torch.float64).flatten()
            if s.numel() == 0 or bool((s < 0).any()) or float(s.square().sum()) == 0:
                raise ValueError("sigmas must be non-empty, non-negative and not all zero (singular values)")
            self.sample = (s / s.square().sum().sqrt()).numpy()
        self.title, self.sample_label = title, str(sample_label)
        # Every curve is precomputed: curves[name][k] for k = 0..max_steps.
        self.curves = {
            name: [self._map(self.x, name, k) for k in range(max_steps + 1)] for name in coefficients
        }
        self.sample_curves = (
            {name: [self._map(self.sample, name, k) for k in range(max_steps + 1)] for name in coefficients}
            if self.sample is not None
            else None
        )
        super().__init__(
            {
                "iterations": list(range(max_steps + 1)),
                "coefficients": list(coefficients),
                "x_scale": ["log", "linear"],
            },
            defaults={"iterations": min(5, max_steps)},
            layout_params=("x_scale",),
            labels={"iterations": "iterations k", "coefficients": "coefficients", "x_scale": "x axis"},
            height=height,
        )

    @staticmethod
    def _map(x: np.ndarray, name: str, k: int) -> np.ndarray:
        """p_k ∘ … ∘ p_1 at inputs x = σ/‖G‖_F, with the set's input safety factor (Polar Express: 1.01)."""
        import torch

        from minidiff.optim.linalg import coefficient_schedule, scalar_map

        _, scale = coefficient_schedule(name, k)
        return scalar_map(torch.as_tensor(x / scale), name, k).numpy()

    def band(self, name: str, k: int) -> tuple[float, float]:
        """(min, max) of the k-step map over the x grid [sigma_min, 1]: where every singular value ends up."""
        y = self.curves[name][k]
        return float(y.min()), float(y.max())

    def format_value(self, name: str, value: Any) -> str:
        if name == "coefficients":
            return COEFFICIENT_LABELS.get(value, str(value))
        if name == "x_scale":
            return f"{value} x"
        return super().format_value(name, value)

    def relayout(self, name: str, value: Any) -> dict:
        if name != "x_scale":
            raise ValueError(f"only 'x_scale' is a layout parameter of SingularValueMap, got {name!r}")
        return {"xaxis.type": value}

    def figure(self, iterations: int = 5, coefficients: str = "muon", x_scale: str = "log") -> go.Figure:
        k, name = iterations, coefficients
        label = COEFFICIENT_LABELS.get(name, name)
        traces = [  # dicts validated once by go.Figure: ~3x faster than add_scatter
            dict(
                type="scatter",
                x=[self.x[0], 1.0],
                y=[1.0, 1.0],
                mode="lines",
                line={"color": "#888", "dash": "dot", "width": 1},
                name="σ = 1: the polar factor UVᵀ",
                hoverinfo="skip",
            ),
            dict(
                type="scatter",
                x=self.x.astype(np.float32),
                y=self.curves[name][k].astype(np.float32),
                mode="lines",
                line={"color": "#1f77b4", "width": 3},
                name=f"p<sub>k</sub>∘…∘p<sub>1</sub>, {label}",
                hovertemplate="σ/‖G‖<sub>F</sub> = %{x:.3g} → %{y:.4f}<extra></extra>",
            ),
        ]
        if self.sample_curves is not None:
            traces.append(
                dict(
                    type="scatter",
                    x=self.sample.astype(np.float32),
                    y=self.sample_curves[name][k].astype(np.float32),
                    mode="markers",
                    marker={"color": "#d62728", "size": 7, "opacity": 0.8},
                    name=self.sample_label,
                    hovertemplate="%{x:.3g} → %{y:.4f}<extra></extra>",
                )
            )
        lo, hi = self.band(name, k)
        heading = (
            f"{label}, {k} iteration{'s' if k != 1 else ''}: σ ∈ [{self.x[0]:.0e}, 1] → [{lo:.3f}, {hi:.3f}]"
        )
        top = max(1.25, float(np.max(self.curves[name][k]))) * 1.2  # headroom for the legend above the curve
        layout = dict(
            title={"text": f"{self.title} · {heading}" if self.title else heading, "x": 0, "xanchor": "left"},
            xaxis={
                "type": x_scale,
                "minorloglabels": "none",  # powers of ten only: no small-digit clutter between them
                "title": {"text": "input singular value σ / ‖G‖<sub>F</sub>"},
                "exponentformat": "power",
            },
            yaxis={
                "title": {"text": "after k iterations  p<sub>k</sub>∘…∘p<sub>1</sub>(σ)"},
                "range": [0, top],
            },
            height=self.height,
            legend={
                "orientation": "h",
                "x": 0.99,
                "xanchor": "right",
                "y": 0.99,
                "yanchor": "top",
                "bgcolor": "rgba(255,255,255,0.85)",
            },
            margin={"l": 90, "r": 20, "b": 50},  # room for the button rows' labels on the left
            hovermode="closest",
        )
        return go.Figure(data=traces, layout=layout)
