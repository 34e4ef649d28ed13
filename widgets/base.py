"""``Widget``: one figure, two faces.

* **live** (:meth:`Widget.live`): ipywidgets controls driving a ``plotly.graph_objects.FigureWidget``; every change
  recomputes :meth:`Widget.figure` in the kernel and updates the figure in place. Needs a kernel with ipywidgets and
  anywidget (plotly >= 6 draws ``FigureWidget`` through anywidget).
* **static** (:meth:`Widget.static`): a plain ``go.Figure`` that holds the traces of every point of the parameter
  grid and plotly's own controls (a slider, button rows) that switch between them. It needs no kernel, so it works
  in the book, in a talk (:meth:`Widget.to_html`) and in any notebook viewer that renders plotly.

A subclass declares its parameter grid and writes one pure function, ``figure(**values) -> go.Figure``, computed
from data precomputed in ``__init__`` (never from training). The static face is built by calling it on the grid.

Which face a notebook shows is decided by ``MINIDIFF_WIDGETS`` (``auto``, ``live`` or ``static``; default
``auto``): ``auto`` picks the live face inside a kernel that has ipywidgets and anywidget, the static face
elsewhere. The book build and the nbval runs set ``static``: a ``FigureWidget`` does not survive into static HTML.

Static-face layout of the controls
----------------------------------
Parameters are either *data* parameters (they change the traces) or *layout* parameters (listed in
``layout_params``; they change only the layout, as ``relayout(name, value)`` says, e.g. a log/linear axis).
The first data parameter gets a slider; a second data parameter gets a row of buttons; every layout parameter gets
a row of buttons that relayouts the figure. Moving the slider also rewrites the data buttons' arguments, so the
slider and the buttons compose: switching the button keeps the slider's position. Traces that are identical at
several grid points are stored once. More than two data parameters do not compose without JavaScript, so they are
refused: fix the others in the constructor.
"""

from __future__ import annotations

import base64
import hashlib
import html
import importlib.util
import itertools
import numbers
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

__all__ = ["MODE_ENV", "MODES", "Widget", "compact_floats", "display_mode", "plotly_mimebundle"]

MODE_ENV = "MINIDIFF_WIDGETS"
MODES = ("auto", "live", "static")

#: plotly ``config`` of every static figure: responsive, no plotly logo, no link to the plotly cloud.
STATIC_CONFIG = {"responsive": True, "displaylogo": False}
#: The static face warns above this size of its plotly JSON (the grid is too fine or the traces too long).
STATIC_SIZE_WARNING_BYTES = 3_000_000

_ROW_PX = 40  # height of one row of buttons in the top margin
_SLIDER_PX = 100  # room below the x axis for the slider, its labels and its current value


def display_mode(mode: str | None = None) -> str:
    """The face to show: ``"live"`` or ``"static"``.

    ``mode`` (or, when ``None``, the environment variable ``MINIDIFF_WIDGETS``) is ``"auto"``, ``"live"`` or
    ``"static"``; ``"auto"`` means live inside an IPython kernel that has ipywidgets and anywidget, static elsewhere.
    """
    source = "mode" if mode is not None else MODE_ENV
    value = (mode if mode is not None else os.environ.get(MODE_ENV, "auto")).strip().lower() or "auto"
    if value not in MODES:
        raise ValueError(f"{source} must be one of {'/'.join(MODES)}, got {value!r}")
    if value != "auto":
        return value
    return "live" if _kernel_can_show_live() else "static"


def _kernel_can_show_live() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return False
    return all(importlib.util.find_spec(name) is not None for name in ("ipywidgets", "anywidget"))


SIGNIFICANT_DIGITS = 5
"""Floats in a static face are written with this many significant digits: a figure's JSON shrinks 2-4x, and no
plot (or hover label) shows more than 4."""


def compact_floats(obj: Any, digits: int = SIGNIFICANT_DIGITS) -> Any:
    """``obj`` (a figure's ``to_dict()``: dicts, lists, numpy arrays, numbers, strings) with every float rounded
    to ``digits`` significant digits; integers, strings and non-finite floats are kept. Arrays plotly already
    encoded as ``{"dtype": "f8", "bdata": base64}`` are re-encoded as float32 (``"f4"``, half the bytes, ~7
    significant digits); float numpy arrays become lists of rounded floats."""
    if isinstance(obj, dict):
        if obj.get("dtype") == "f8" and isinstance(obj.get("bdata"), str):
            values = np.frombuffer(base64.b64decode(obj["bdata"]), dtype="<f8").astype("<f4")
            return {**obj, "dtype": "f4", "bdata": base64.b64encode(values.tobytes()).decode("ascii")}
        return {k: compact_floats(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [compact_floats(v, digits) for v in obj]
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind == "f":
            return [compact_floats(v, digits) for v in obj.tolist()]
        return obj
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        return float(f"{x:.{digits}g}") if np.isfinite(x) else x
    return obj


def plotly_mimebundle(fig: go.Figure) -> dict:
    """The ``application/vnd.plotly.v1+json`` bundle of ``fig`` (what a headless kernel emits for a figure), with
    floats rounded by :func:`compact_floats`."""
    return pio.renderers["plotly_mimetype"].to_mimebundle(compact_floats(fig.to_dict()))


@contextmanager
def _no_default_template() -> Iterator[None]:
    """Build figures without plotly's default template: copying it costs ~10 ms per figure; the faces apply
    :attr:`Widget.template` once instead."""
    saved = pio.templates.default
    pio.templates.default = None
    try:
        yield
    finally:
        pio.templates.default = saved


class Widget:
    """Base class of the chapter widgets; see the module docstring.

    Args:
        params: the grid, ``{name: [value, ...]}``, in display order. The first data parameter becomes the static
            face's slider.
        defaults: starting value per parameter (default: the first value of each list). Must lie on the grid.
        layout_params: names of parameters that only change the layout; the subclass implements
            :meth:`relayout` for them.
        labels: display names of parameters (default: the name with ``_`` as spaces).
        height: height of the figure in pixels, controls excluded.

    Subclasses do not set a plotly template in :meth:`figure`; both faces apply :attr:`template`.
    """

    #: plotly template of both faces
    template: str = "plotly_white"

    def __init__(
        self,
        params: Mapping[str, Sequence[Any]],
        *,
        defaults: Mapping[str, Any] | None = None,
        layout_params: Sequence[str] = (),
        labels: Mapping[str, str] | None = None,
        height: int = 450,
    ) -> None:
        if not isinstance(params, Mapping) or not params:
            raise ValueError(f"params must be a non-empty mapping name -> list of values, got {params!r}")
        self.params: dict[str, list] = {}
        for name, values in params.items():
            values = list(values)
            if not values:
                raise ValueError(f"params[{name!r}] must list at least one value, got []")
            self.params[str(name)] = values
        self.defaults: dict[str, Any] = {name: values[0] for name, values in self.params.items()}
        for name, value in (defaults or {}).items():
            if name not in self.params:
                raise ValueError(
                    f"defaults names an unknown parameter {name!r}; parameters: {list(self.params)}"
                )
            if value not in self.params[name]:
                raise ValueError(f"defaults[{name!r}] must be one of {self.params[name]}, got {value!r}")
            self.defaults[name] = value
        unknown = [name for name in layout_params if name not in self.params]
        if unknown:
            raise ValueError(
                f"layout_params names unknown parameter(s) {unknown}; parameters: {list(self.params)}"
            )
        self.layout_params: tuple[str, ...] = tuple(layout_params)
        self.labels = {name: name.replace("_", " ") for name in self.params} | dict(labels or {})
        if not isinstance(height, int) or height < 100:
            raise ValueError(f"height must be an int >= 100 (pixels), got {height!r}")
        self.height = height
        data_params = self.data_params
        if len(data_params) > 2:
            raise ValueError(
                f"a widget has at most two data parameters (a slider and a row of buttons), got {data_params}; "
                "fix the others in the constructor or declare layout-only ones in layout_params"
            )

    # ----------------------------------------------------------------------------------- for subclasses
    def figure(self, **values: Any) -> go.Figure:
        """The figure for one setting of every parameter. Pure: computed from precomputed data."""
        raise NotImplementedError(f"{type(self).__name__} must implement figure(**values)")

    def relayout(self, name: str, value: Any) -> dict:
        """Layout changes that the layout parameter ``name`` makes at ``value`` (plotly ``relayout`` keys)."""
        raise NotImplementedError(f"{type(self).__name__} must implement relayout() for its layout_params")

    def format_value(self, name: str, value: Any) -> str:
        """How a parameter value is written on a control."""
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)

    # ----------------------------------------------------------------------------------- the grid
    @property
    def data_params(self) -> list[str]:
        """Parameters that change the traces and have more than one value (single values are fixed)."""
        return [n for n, v in self.params.items() if n not in self.layout_params and len(v) > 1]

    def _checked(self, values: Mapping[str, Any]) -> dict[str, Any]:
        unknown = [name for name in values if name not in self.params]
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown}; parameters: {list(self.params)}")
        return {**self.defaults, **values}

    # ----------------------------------------------------------------------------------- live face
    def controls(self) -> dict[str, Any]:
        """One ipywidgets control per parameter with several values: a slider for numbers, toggle buttons or a
        dropdown otherwise. Their labels are added by :meth:`live`."""
        import ipywidgets as W

        out = {}
        for name, values in self.params.items():
            if len(values) == 1:
                continue
            options = [(self.format_value(name, v), v) for v in values]
            numeric = all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values)
            if numeric:
                control = W.SelectionSlider(
                    continuous_update=True, layout=W.Layout(width="420px"), options=options
                )
            elif len(values) <= 6:
                control = W.ToggleButtons(style={"button_width": "auto"}, options=options)
            else:
                control = W.Dropdown(options=options)
            control.value = self.defaults[name]
            out[name] = control
        return out

    def live(self):
        """Controls above a ``FigureWidget``; a change recomputes :meth:`figure` and updates it in place.

        Returns an ``ipywidgets.VBox`` (one labelled row per control, then the figure) with two attributes for
        code and tests: ``controls`` (name -> control) and ``figure_widget``.
        """
        import ipywidgets as W

        controls = self.controls()
        fig_widget = _LiveFigure(self.figure(**self.defaults).update_layout(template=self.template))

        def on_change(_change: Any) -> None:
            with _no_default_template():
                new = self.figure(**(self.defaults | {name: c.value for name, c in controls.items()}))
            _update_in_place(fig_widget, new)

        for control in controls.values():
            control.observe(on_change, names="value")
        label_px = 8 * max((len(self.labels[name]) for name in controls), default=0) + 16
        rows = [
            W.HBox([W.Label(self.labels[name], layout=W.Layout(width=f"{label_px}px")), control])
            for name, control in controls.items()
        ]
        box = W.VBox([*rows, fig_widget])
        box.controls, box.figure_widget = controls, fig_widget
        return box

    # ----------------------------------------------------------------------------------- static face
    def static(self) -> go.Figure:
        """Every grid point precomputed into one figure switched by plotly sliders and buttons."""
        data_names = self.data_params
        layout_keys = {
            key for name in self.layout_params for v in self.params[name] for key in self.relayout(name, v)
        }
        grid = list(itertools.product(*(range(len(self.params[n])) for n in data_names)))
        default_point = tuple(self.params[n].index(self.defaults[n]) for n in data_names)

        traces: list[dict] = []
        trace_on: list[Any] = []  # what "visible" is for a shown trace (True or "legendonly")
        seen: dict[tuple, int] = {}
        shown: dict[tuple, set[int]] = {}
        layouts: dict[tuple, dict] = {}
        with _no_default_template():
            figures = {
                point: self.figure(
                    **(self.defaults | {n: self.params[n][i] for n, i in zip(data_names, point)})
                )
                for point in grid
            }
            for point, fig in figures.items():
                if not isinstance(fig, go.Figure):
                    raise TypeError(
                        f"{type(self).__name__}.figure must return a go.Figure, got {type(fig).__name__}"
                    )
                # per trace, not fig.to_plotly_json(): that one base64-encodes the arrays
                figures[point] = {
                    "data": [t.to_plotly_json() for t in fig.data],
                    "layout": fig.layout.to_plotly_json(),
                }
        for point in grid:
            fig_json = figures[point]
            shown[point] = set()
            counts: dict[tuple, int] = {}
            for trace in fig_json["data"]:
                trace = dict(trace)
                on = trace.pop("visible", True)
                on = "legendonly" if on == "legendonly" else bool(on)
                key = (_fingerprint(trace), on)
                counts[key] = counts.get(key, 0) + 1
                key = (*key, counts[key])
                if key not in seen:
                    seen[key] = len(traces)
                    traces.append(trace)
                    trace_on.append(on)
                shown[point].add(seen[key])
            layouts[point] = fig_json["layout"]

        def mask(point: tuple) -> list:
            return [trace_on[i] if i in shown[point] else False for i in range(len(traces))]

        layout_rows = [name for name in self.layout_params if len(self.params[name]) > 1]
        row_names = data_names[1:] + layout_rows
        total = self.height + _ROW_PX * len(row_names) + (_SLIDER_PX if data_names else 0)
        for layout in layouts.values():  # each button row is labelled by an annotation left of it
            margin_b = layout.get("margin", {}).get("b", 50)
            plot_px = total - (56 + _ROW_PX * len(row_names)) - (margin_b + (_SLIDER_PX if data_names else 0))
            layout["annotations"] = [
                *layout.get("annotations", ()),
                *_row_labels(row_names, self.labels, plot_px),
            ]

        def flat_layout(point: tuple) -> dict:
            return _flatten({k: v for k, v in layouts[point].items() if k != "template"})

        base = flat_layout(default_point)

        def delta(point: tuple) -> dict:
            flat = flat_layout(point)
            out = {k: v for k, v in flat.items() if base.get(k, _MISSING) != v}
            out |= {k: None for k in base if k not in flat}
            return {k: v for k, v in out.items() if not _touches(k, layout_keys)}

        for i, trace in enumerate(traces):
            trace["visible"] = trace_on[i] if i in shown[default_point] else False
        with _no_default_template():
            fig = go.Figure(data=traces, layout=layouts[default_point])
        fig.update_layout(template=self.template)

        top = 56 + _ROW_PX * len(row_names)
        bottom = (fig.layout.margin.b if fig.layout.margin.b is not None else 50) + (
            _SLIDER_PX if data_names else 0
        )
        fig.update_layout(height=total, margin={"t": top, "b": bottom})
        if fig.layout.title.text:
            fig.update_layout(title={"yref": "container", "y": 1 - 10 / total, "yanchor": "top"})
        plot_px = total - top - bottom

        menus: list[dict] = []
        row = 0
        if len(data_names) == 2:
            slider_name, button_name = data_names
            slider_values, button_values = self.params[slider_name], self.params[button_name]

            def button_args(i: int, j: int) -> list:
                lay = delta((i, j)) | {f"sliders[{k}].visible": k == j for k in range(len(button_values))}
                lay[f"sliders[{j}].active"] = i
                return [{"visible": mask((i, j))}, lay]

            sliders = []
            for j in range(len(button_values)):
                steps = []
                for i, value in enumerate(slider_values):
                    lay = delta((i, j))
                    for k in range(len(button_values)):
                        lay[f"updatemenus[0].buttons[{k}].args"] = button_args(i, k)
                    steps.append(
                        _step(self.format_value(slider_name, value), [{"visible": mask((i, j))}, lay])
                    )
                sliders.append(
                    _slider(steps, default_point[0], self.labels[slider_name], visible=j == default_point[1])
                )
            buttons = [
                {
                    "method": "update",
                    "label": self.format_value(button_name, v),
                    "args": button_args(default_point[0], j),
                }
                for j, v in enumerate(button_values)
            ]
            menus.append(_button_row(buttons, default_point[1], row, plot_px))
            row += 1
            fig.update_layout(sliders=sliders)
        elif len(data_names) == 1:
            (slider_name,) = data_names
            steps = [
                _step(self.format_value(slider_name, v), [{"visible": mask((i,))}, delta((i,))])
                for i, v in enumerate(self.params[slider_name])
            ]
            fig.update_layout(sliders=[_slider(steps, default_point[0], self.labels[slider_name])])
        for name in layout_rows:
            values = self.params[name]
            buttons = [
                {"method": "relayout", "label": self.format_value(name, v), "args": [self.relayout(name, v)]}
                for v in values
            ]
            menus.append(_button_row(buttons, values.index(self.defaults[name]), row, plot_px))
            row += 1
        if menus:
            fig.update_layout(updatemenus=menus)
        size = len(fig.to_json())
        if size > STATIC_SIZE_WARNING_BYTES:
            warnings.warn(
                f"{type(self).__name__}.static() is {size / 1e6:.1f} MB of plotly JSON; coarsen the grid or "
                "downsample the traces",
                stacklevel=2,
            )
        return fig

    def to_html(
        self, path: str | os.PathLike, *, include_plotlyjs: bool | str = True, title: str | None = None
    ) -> Path:
        """Write the static face as a standalone HTML file that works offline (plotly.js inlined by default).

        ``include_plotlyjs`` is passed to ``plotly.io.to_html``: ``True`` inlines plotly.js (about 5 MB, one file
        for a talk), ``"directory"`` expects ``plotly.min.js`` beside the file. Returns the path written.
        """
        if include_plotlyjs not in (True, "directory"):
            raise ValueError(
                f"include_plotlyjs must be True (inline) or 'directory' (offline, beside the file), got {include_plotlyjs!r}"
            )
        path = Path(path)
        fig = self.static()
        page = pio.to_html(
            compact_floats(fig.to_dict()),
            include_plotlyjs=include_plotlyjs,
            include_mathjax=False,
            full_html=True,
            config=STATIC_CONFIG,
            div_id=f"minidiff-{type(self).__name__.lower()}",
            default_height=f"{fig.layout.height}px",
        )
        if include_plotlyjs == "directory":
            import shutil

            shutil.copyfile(
                Path(pio.__file__).parent.parent / "package_data" / "plotly.min.js",
                path.parent / "plotly.min.js",
            )
        title = title or type(self).__name__
        page = page.replace("<head>", f"<head><title>{html.escape(title)}</title>", 1)
        path.write_text(page, encoding="utf-8")
        return path

    # ----------------------------------------------------------------------------------- display
    def show(self, mode: str | None = None) -> None:
        """Display the widget; ``mode`` overrides ``MINIDIFF_WIDGETS`` (``"live"``, ``"static"``, ``"auto"``)."""
        from IPython.display import display

        if display_mode(mode) == "live":
            display(self.live())
        else:
            display(plotly_mimebundle(self.static()) | {"text/plain": repr(self)}, raw=True)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None, **kwargs: Any) -> dict:
        if display_mode() == "live":
            return self.live()._repr_mimebundle_(include=include, exclude=exclude, **kwargs)
        return plotly_mimebundle(self.static()) | {"text/plain": repr(self)}

    def __repr__(self) -> str:
        grid = ", ".join(f"{name}={len(values)} values" for name, values in self.params.items())
        return f"{type(self).__name__}({grid})"


# --------------------------------------------------------------------------------------------- helpers
_MISSING = object()


def _fingerprint(obj: Any) -> Any:
    """A hashable summary of a trace dict (arrays by digest), equal for equal traces."""
    if isinstance(obj, np.ndarray):
        data = np.ascontiguousarray(obj)
        return ("nd", str(data.dtype), data.shape, hashlib.sha1(data.tobytes()).hexdigest())
    if isinstance(obj, Mapping):
        return tuple(sorted((str(k), _fingerprint(v)) for k, v in obj.items()))
    if isinstance(obj, (list, tuple)):
        return ("seq", tuple(_fingerprint(v) for v in obj))
    if isinstance(obj, float) and obj != obj:
        return ("nan",)
    return obj if isinstance(obj, (str, int, float, bool, type(None))) else repr(obj)


def _flatten(layout: Mapping, prefix: str = "") -> dict:
    """Nested layout dict -> ``{"xaxis.title.text": ...}``; lists are leaves (relayout replaces them whole)."""
    out = {}
    for key, value in layout.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out |= _flatten(value, path + ".")
        else:
            out[path] = value.tolist() if isinstance(value, np.ndarray) else value
    return out


def _touches(key: str, keys: set[str]) -> bool:
    return any(key == k or key.startswith(k + ".") or k.startswith(key + ".") for k in keys)


def _step(label: str, args: list) -> dict:
    return {"method": "update", "label": label, "args": args}


def _slider(steps: list[dict], active: int, label: str, *, visible: bool = True) -> dict:
    return {
        "active": active,
        "steps": steps,
        "visible": visible,
        "x": 0,
        "len": 1,
        "xanchor": "left",
        "y": 0,
        "yanchor": "top",
        "pad": {"t": 55, "b": 0},
        "currentvalue": {"prefix": f"{label}: ", "visible": True, "xanchor": "left"},
    }


def _row_y(row: int, plot_px: int) -> float:
    return 1 + (8 + _ROW_PX * row) / max(plot_px, 1)


def _row_labels(names: list[str], labels: Mapping[str, str], plot_px: int) -> list[dict]:
    return [
        {
            "text": labels[name],
            "xref": "paper",
            "yref": "paper",
            "x": 0,
            "xanchor": "right",
            "xshift": -8,
            "y": _row_y(row, plot_px),
            "yanchor": "bottom",
            "yshift": 8,
            "showarrow": False,
            "font": {"size": 12},
        }
        for row, name in enumerate(names)
    ]


def _button_row(buttons: list[dict], active: int, row: int, plot_px: int) -> dict:
    return {
        "type": "buttons",
        "direction": "right",
        "buttons": buttons,
        "active": active,
        "showactive": True,
        "x": 0,
        "xanchor": "left",
        "y": _row_y(row, plot_px),
        "yanchor": "bottom",
        "pad": {"t": 0, "b": 0, "l": 0, "r": 0},
    }


class _LiveFigure(go.FigureWidget):
    """A ``FigureWidget`` whose comm opens once the figure is in place.

    plotly opens the comm in the middle of its constructor, before the traces exist, and sends them in a second
    message; a browser view created between the two (seen under load, inside a box of controls) draws an empty
    plot and never recovers. Opening the comm last makes the first message carry the whole figure.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._comm_on_hold = True
        super().__init__(*args, **kwargs)
        self._comm_on_hold = False
        self.open()

    def open(self) -> None:
        if not getattr(self, "_comm_on_hold", False):
            super().open()


def _update_in_place(fig_widget: go.FigureWidget, new: go.Figure) -> None:
    """Make ``fig_widget`` show ``new`` with as few messages to the browser as possible."""
    new_traces, new_layout = [t.to_plotly_json() for t in new.data], new.layout.to_plotly_json()
    new_layout.pop("template", None)
    same_shape = len(fig_widget.data) == len(new_traces) and all(
        old.type == t.get("type", "scatter") for old, t in zip(fig_widget.data, new_traces)
    )
    if not same_shape:  # a different set of traces: replace them (outside batch_update, which cannot)
        fig_widget.data = ()
        fig_widget.add_traces(new.data)
    with fig_widget.batch_update():
        if same_shape:
            for old, t in zip(fig_widget.data, new_traces):
                old.update({k: v for k, v in t.items() if k != "type"}, overwrite=True)
        fig_widget.layout.update(new_layout, overwrite=True)
