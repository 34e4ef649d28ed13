"""Interactive figures for the chapters.

Every widget has two faces (see :mod:`widgets.base`): a **live** one in JupyterLab (ipywidgets controls driving a
plotly ``FigureWidget`` through the kernel) and a **static** one (a plain plotly figure with its own sliders and
buttons, computed ahead on a grid) for the book and for talks (``widget.to_html(path)``). ``MINIDIFF_WIDGETS``
(``auto``/``live``/``static``) picks the face a notebook shows.

``import widgets`` imports numpy, plotly and ``minidiff`` only; ipywidgets is imported when a live face is built.
"""

from widgets.base import MODE_ENV, Widget, display_mode, plotly_mimebundle
from widgets.bench import BenchExplorer
from widgets.growth import GrowthPlayer
from widgets.history import HistoryViewer, trailing_mean
from widgets.memory import CompressionPlayer, QuantizationExplorer, ownership_figure, quantization_map_figure
from widgets.optim import SingularValueMap
from widgets.sampling import SamplingOrderPlayer
from widgets.schedules import ScheduleExplorer
from widgets.spectra import SpectrumViewer

__all__ = [
    "MODE_ENV",
    "Widget",
    "display_mode",
    "plotly_mimebundle",
    "BenchExplorer",
    "GrowthPlayer",
    "HistoryViewer",
    "trailing_mean",
    "CompressionPlayer",
    "QuantizationExplorer",
    "ownership_figure",
    "quantization_map_figure",
    "SingularValueMap",
    "SamplingOrderPlayer",
    "ScheduleExplorer",
    "SpectrumViewer",
]
