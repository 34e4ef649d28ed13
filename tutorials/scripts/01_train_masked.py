"""Train chapter 01's two masked-diffusion models and save small checkpoints under ``tutorials/data/01_masked``.

* ``arithmetic.pt`` -- 2-digit addition (``arithmetic`` task, length 12: prompt, answer, EOS, PAD tail), a
  bidirectional Transformer (d_model 128, 2 layers) trained on the continuous-time MDLM NELBO;
* ``text.pt`` -- character-level Shakespeare windows of 64 characters, same architecture.

Each file holds ``{"config", "state_dict" (float16), "loss", "step" (every 10th step), "steps", "minutes"}``; chapter 01 loads them with
``Transformer(**config)`` and ``load_state_dict``. Run from the repository root (about 15 minutes on 2 CPU cores)::

    OMP_NUM_THREADS=1 python tutorials/scripts/01_train_masked.py            # MINIDIFF_FAST=1: a smoke run
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from minidiff.config import pick, seed_everything
from minidiff.data import get_task
from minidiff.data.text import TextDataset
from minidiff.diffusion import MaskedDiffusion
from minidiff.nn import Transformer
from minidiff.train import fit

OUT = Path(__file__).resolve().parents[1] / "data" / "01_masked"
ARCH = {"d_model": 128, "n_layers": 2, "n_heads": 4}


def save(name: str, model: Transformer, config: dict, history, seconds: float) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    keep = sorted({*range(0, len(history.loss), 10), len(history.loss) - 1})  # every 10th step and the last
    torch.save(
        {
            "config": config,
            "state_dict": state,
            "loss": [float(history.loss[i]) for i in keep],
            "step": [int(history.step[i]) for i in keep],
            "steps": int(history.step[-1]),
            "minutes": seconds / 60,
        },
        OUT / f"{name}.pt",
    )
    print(f"saved {OUT / name}.pt after {seconds / 60:.1f} min, final loss {history.loss[-1]:.3f}")


def train_arithmetic() -> None:
    seed_everything(0)
    task = get_task("arithmetic", max_digits=2)
    train = task.batch(task.generate(pick(full=20_000, fast=2_000), seed=0), length=12)
    vocab = len(task.vocab)
    config = {"vocab_size": vocab, "max_len": 12, **ARCH}
    model = Transformer(**config)
    process = MaskedDiffusion(vocab, task.vocab.mask_id)
    start = time.perf_counter()
    history = fit(
        model, process.loss, train, steps=pick(full=3000, fast=40), batch_size=64, lr=2e-3,
        lr_schedule="cosine", warmup=pick(full=200, fast=4), progress=False,
    )  # fmt: skip
    save("arithmetic", model, config, history, time.perf_counter() - start)


def train_text() -> None:
    seed_everything(0)
    data = TextDataset.load("shakespeare")
    vocab = len(data.vocab)
    config = {"vocab_size": vocab, "max_len": 64, **ARCH}
    model = Transformer(**config)
    process = MaskedDiffusion(vocab, data.vocab.mask_id)

    def windows(batch_size: int, generator: torch.Generator) -> torch.Tensor:
        return data.windows("train", seq_len=64, batch_size=batch_size, generator=generator)

    start = time.perf_counter()
    history = fit(
        model, process.loss, windows, steps=pick(full=2000, fast=40), batch_size=32, lr=2e-3,
        lr_schedule="cosine", warmup=pick(full=200, fast=4), progress=False,
    )  # fmt: skip
    save("text", model, config, history, time.perf_counter() - start)


if __name__ == "__main__":
    torch.set_num_threads(1)
    train_arithmetic()
    train_text()
