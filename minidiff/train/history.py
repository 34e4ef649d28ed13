"""``History``: what :func:`minidiff.train.fit` records, as plain lists that survive a ``weights_only`` checkpoint.

Per logged step: ``step``, ``loss``, ``lr``, ``grad_norm`` (before clipping), ``tokens`` (cumulative) and
``wall_time`` (seconds since training started, resumed runs included). ``extra`` holds any other metric a loss
returns, one list per name aligned with ``step`` (NaN where a step did not report it); ``evals`` holds one dict
per evaluation, each with its ``"step"``. ``plot()`` needs plotly, imported only when called.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

__all__ = ["History"]

_SERIES = ("step", "loss", "lr", "grad_norm", "tokens", "wall_time")


def _to_float(name: str, value: Any) -> float:
    if hasattr(value, "item"):  # 0-dim tensors and NumPy scalars
        value = value.item()
    if not isinstance(value, numbers.Real):
        raise TypeError(
            f"metric {name!r} must be a real number or a 0-dim tensor, got {type(value).__name__}"
        )
    return float(value)


@dataclass
class History:
    """Training curves of one run; see the module docstring."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    wall_time: list[float] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    extra: dict[str, list[float]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.step)

    def log(
        self,
        step: int,
        *,
        loss: float,
        lr: float,
        grad_norm: float,
        tokens: int,
        wall_time: float,
        metrics: dict[str, Any] | None = None,
    ) -> None:
        """Append one training step; ``metrics`` go to ``extra`` (earlier steps back-filled with NaN)."""
        n = len(self)
        self.step.append(int(step))
        self.loss.append(_to_float("loss", loss))
        self.lr.append(_to_float("lr", lr))
        self.grad_norm.append(_to_float("grad_norm", grad_norm))
        self.tokens.append(int(tokens))
        self.wall_time.append(_to_float("wall_time", wall_time))
        for name, value in (metrics or {}).items():
            self.extra.setdefault(name, [math.nan] * n).append(_to_float(name, value))
        for values in self.extra.values():
            if len(values) == n:
                values.append(math.nan)

    def log_eval(self, step: int, metrics: dict[str, Any]) -> dict:
        """Append one evaluation (numbers and 0-dim tensors become floats); returns the stored dict."""
        if not isinstance(metrics, dict):
            raise TypeError(f"eval metrics must be a dict, got {type(metrics).__name__}")
        record: dict = {"step": int(step)}
        for name, value in metrics.items():
            if name == "step":
                raise ValueError("eval metrics must not contain the reserved key 'step'")
            record[str(name)] = value if isinstance(value, (str, bool)) else _to_float(name, value)
        self.evals.append(record)
        return record

    def series(self, key: str) -> list[float]:
        """The list logged under ``key``: a core series or an ``extra`` metric."""
        if key in _SERIES:
            return getattr(self, key)
        if key in self.extra:
            return self.extra[key]
        raise KeyError(f"unknown history key {key!r}; available: {list(_SERIES) + sorted(self.extra)}")

    def smoothed(self, key: str, window: int) -> list[float]:
        """Trailing mean of ``key`` over the last ``window`` logged values (NaNs ignored)."""
        if not isinstance(window, int) or isinstance(window, bool) or window < 1:
            raise ValueError(f"window must be a positive int, got {window!r}")
        values = self.series(key)
        out = []
        for i in range(len(values)):
            finite = [v for v in values[max(0, i - window + 1) : i + 1] if math.isfinite(v)]
            out.append(sum(finite) / len(finite) if finite else math.nan)
        return out

    def to_dict(self) -> dict:
        """Plain lists and dicts (copies), loadable with ``torch.load(weights_only=True)``."""
        out: dict = {key: list(getattr(self, key)) for key in _SERIES}
        out["evals"] = [dict(e) for e in self.evals]
        out["extra"] = {k: list(v) for k, v in self.extra.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict) -> History:
        """Inverse of :meth:`to_dict`."""
        missing = [k for k in _SERIES if k not in data]
        if missing:
            raise ValueError(f"history dict lacks the key(s) {missing}")
        return cls(
            **{k: list(data[k]) for k in _SERIES},
            evals=[dict(e) for e in data.get("evals", [])],
            extra={k: list(v) for k, v in data.get("extra", {}).items()},
        )

    def plot(self, smooth: int | None = None, *, title: str | None = None):
        """A plotly figure: loss (log y) with eval metrics overlaid, then LR and grad norm, sharing the x axis.

        ``smooth`` is the trailing-mean window drawn over the raw loss (``None``: about 1/50 of the run;
        ``1``: raw only). Eval metrics whose name contains "loss" share the loss axis; others (accuracies) get a
        linear axis on the right.
        """
        from plotly.subplots import make_subplots

        if smooth is None:
            smooth = max(1, len(self) // 50)
        fig = make_subplots(
            rows=3,
            cols=1,
            shared_xaxes=True,
            row_heights=[0.6, 0.2, 0.2],
            vertical_spacing=0.04,
            specs=[[{"secondary_y": True}], [{}], [{}]],
        )
        raw_opacity = 0.35 if smooth > 1 else 1.0
        fig.add_scatter(x=self.step, y=self.loss, name="loss", opacity=raw_opacity, row=1, col=1)
        if smooth > 1:
            fig.add_scatter(
                x=self.step, y=self.smoothed("loss", smooth), name=f"loss (mean of {smooth})", row=1, col=1
            )
        names = sorted(
            {k for e in self.evals for k in e if k != "step" and not isinstance(e[k], (str, bool))}
        )
        for name in names:
            points = [(e["step"], e[name]) for e in self.evals if name in e]
            fig.add_scatter(
                x=[s for s, _ in points],
                y=[v for _, v in points],
                name=f"eval {name}",
                mode="lines+markers",
                row=1,
                col=1,
                secondary_y="loss" not in name,
            )
        fig.add_scatter(x=self.step, y=self.lr, name="lr", row=2, col=1)
        fig.add_scatter(x=self.step, y=self.grad_norm, name="grad norm", row=3, col=1)
        fig.update_yaxes(type="log", title_text="loss", row=1, col=1, secondary_y=False)
        fig.update_yaxes(title_text="eval", row=1, col=1, secondary_y=True, showgrid=False)
        fig.update_yaxes(title_text="lr", row=2, col=1)
        fig.update_yaxes(title_text="grad norm", row=3, col=1)
        fig.update_xaxes(title_text="step", row=3, col=1)
        fig.update_layout(title=title, height=600, hovermode="x unified")
        return fig
