"""Training: ``fit`` (the one loop), LR schedules, ``History`` and bit-exact resumable checkpoints.

``import minidiff.train`` needs torch, numpy and tqdm only; ``History.plot`` imports plotly when called.
"""

from minidiff.train.checkpoint import load_checkpoint, save_checkpoint
from minidiff.train.history import History
from minidiff.train.loop import fit
from minidiff.train.lr_schedules import constant, cosine, get_lr_schedule, wsd

__all__ = [
    "fit",
    "History",
    "save_checkpoint",
    "load_checkpoint",
    "get_lr_schedule",
    "constant",
    "cosine",
    "wsd",
]
