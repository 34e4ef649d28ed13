"""Checkpoints that resume training bit-for-bit, written atomically and read with ``weights_only=True``.

A checkpoint holds the model, optimizer and LR-scheduler state dicts, the :class:`History` as plain lists, the
step, the state of the batch generator and **every** global RNG (torch CPU and CUDA, Python ``random``, NumPy):
objectives draw noise levels and masks from the global torch RNG, so restoring the weights alone would give a
different run after a restart. Non-tensor RNG states are converted to tensors and plain Python values, so the
file loads with ``torch.load(weights_only=True)`` -- we never unpickle arbitrary objects.

The file is written to a temporary name in the same folder and moved into place with ``os.replace``, so a run
killed while saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from minidiff.train.history import History

__all__ = ["save_checkpoint", "load_checkpoint", "get_rng_state", "set_rng_state"]

FORMAT = "minidiff.checkpoint/1"


def get_rng_state() -> dict:
    """The global RNG states of torch (CPU, CUDA when available), Python and NumPy, as weights_only-safe values."""
    version, mt_state, gauss_next = random.getstate()
    # The legacy global NumPy RNG is exactly the hidden state a user's code may draw from, so it is what we save.
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)  # noqa: NPY002
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "python": {
            "version": version,
            "state": torch.tensor(mt_state, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
        "numpy": {
            "kind": np_kind,
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
    }


def set_rng_state(state: dict) -> None:
    """Restore the states returned by :func:`get_rng_state`."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        cuda_states = state["cuda"][: torch.cuda.device_count()]
        for device, cuda_state in enumerate(cuda_states):
            torch.cuda.set_rng_state(cuda_state, device)
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss_next"]))
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state((npy["kind"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))  # noqa: NPY002


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    history: History | None = None,
    step: int,
    generator: torch.Generator | None = None,
    extra: dict | None = None,
) -> Path:
    """Write a checkpoint atomically; returns its path.

    ``extra`` must hold only tensors and plain Python containers/values, or the file will not load with
    ``weights_only=True``.
    """
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ValueError(f"step must be a non-negative int, got {step!r}")
    path = Path(path)
    payload = {
        "format": FORMAT,
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "history": history.to_dict() if history is not None else None,
        "generator": generator.get_state() if generator is not None else None,
        "rng": get_rng_state(),
        "extra": extra,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _load_model_state(model: torch.nn.Module, state: dict, path: Path) -> None:
    own = set(model.state_dict())
    missing, unexpected = sorted(own - set(state)), sorted(set(state) - own)
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {path} does not match the model: missing keys {missing[:8]}"
            f"{' ...' if len(missing) > 8 else ''}, unexpected keys {unexpected[:8]}"
            f"{' ...' if len(unexpected) > 8 else ''}"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as err:  # shape mismatches
        raise ValueError(f"checkpoint {path} does not match the model: {err}") from err


def load_checkpoint(
    path: str | os.PathLike,
    *,
    model: torch.nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    generator: torch.Generator | None = None,
    restore_rng: bool = True,
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Read a checkpoint and load it into whatever objects are given; returns its contents.

    The returned dict has the keys written by :func:`save_checkpoint`, with ``"history"`` rebuilt as a
    :class:`History` (or ``None``). With ``restore_rng`` the global RNGs are set to their saved states.
    Tensors are read onto ``map_location``; ``load_state_dict`` then moves them to each parameter's device.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise pickle.UnpicklingError(
            f"checkpoint {path} holds objects that torch.load(weights_only=True) refuses to unpickle; minidiff "
            f"checkpoints contain only tensors and plain Python values ({err})"
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a minidiff checkpoint (expected format {FORMAT!r})")
    if model is not None:
        _load_model_state(model, payload["model"], path)
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler)):
        if obj is not None:
            if payload[name] is None:
                raise ValueError(
                    f"checkpoint {path} has no {name} state, but a {name} was passed to load it into"
                )
            obj.load_state_dict(payload[name])
    if generator is not None and payload["generator"] is not None:
        generator.set_state(payload["generator"])
    if restore_rng:
        set_rng_state(payload["rng"])
    if payload["history"] is not None:
        payload["history"] = History.from_dict(payload["history"])
    return payload
