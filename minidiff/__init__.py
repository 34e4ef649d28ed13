"""minidiff: an educational, notebook-first PyTorch library.

Discrete diffusion language models, pretraining optimizers, flow matching and the other methods of the seed
papers, implemented faithfully at toy scale. ``import minidiff`` needs only torch and numpy.

Subpackages are imported on first use (``minidiff.diffusion``, ``minidiff.optim``, ...) so that importing the
package stays cheap.
"""

from __future__ import annotations

import importlib

from minidiff import config
from minidiff.config import FAST, pick, seed_everything

__version__ = "0.1.0"
__all__ = ["config", "FAST", "pick", "seed_everything", "__version__"]

_SUBPACKAGES = {
    "nn",
    "data",
    "train",
    "optim",
    "diffusion",
    "analysis",
    "kernels",
    "distributed",
    "flow",
    "autoregressive",
}


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        module = importlib.import_module(f"minidiff.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'minidiff' has no attribute {name!r}")
