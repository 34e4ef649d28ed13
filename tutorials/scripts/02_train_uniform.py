"""Train chapter 02's uniform-state diffusion model and save it as ``tutorials/data/02_uniform/arithmetic.pt``.

The recipe is exactly that of chapter 01's masked model (``tutorials/scripts/01_train_masked.py``): 2-digit
addition in 12 positions, a bidirectional Transformer (d_model 128, 2 layers, no time input), 3000 steps of batch 64,
AdamW lr 2e-3 with a cosine schedule -- only the process differs (:class:`~minidiff.diffusion.UniformDiffusion`,
closed-form NELBO of UDLM/Duo), so chapter 02 compares the two at the same training budget. About 15 minutes on
2 CPU cores::

    OMP_NUM_THREADS=1 python tutorials/scripts/02_train_uniform.py            # MINIDIFF_FAST=1: a smoke run
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from minidiff.config import pick, seed_everything
from minidiff.data import get_task
from minidiff.diffusion import UniformDiffusion
from minidiff.nn import Transformer
from minidiff.train import fit

OUT = Path(__file__).resolve().parents[1] / "data" / "02_uniform"


def main() -> None:
    torch.set_num_threads(1)
    seed_everything(0)
    task = get_task("arithmetic", max_digits=2)
    train = task.batch(task.generate(pick(full=20_000, fast=2_000), seed=0), length=12)
    vocab = len(task.vocab)
    config = {"vocab_size": vocab, "max_len": 12, "d_model": 128, "n_layers": 2, "n_heads": 4}
    model = Transformer(**config)
    process = UniformDiffusion(vocab, mask_id=task.vocab.mask_id)
    start = time.perf_counter()
    history = fit(
        model, process.loss, train, steps=pick(full=3000, fast=40), batch_size=64, lr=2e-3,
        lr_schedule="cosine", warmup=pick(full=200, fast=4), progress=False,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    OUT.mkdir(parents=True, exist_ok=True)
    keep = sorted({*range(0, len(history.loss), 10), len(history.loss) - 1})
    torch.save(
        {
            "config": config,
            "state_dict": {
                k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()
            },
            "loss": [float(history.loss[i]) for i in keep],
            "step": [int(history.step[i]) for i in keep],
            "steps": int(history.step[-1]),
            "minutes": seconds / 60,
        },
        OUT / "arithmetic.pt",
    )
    print(f"saved {OUT / 'arithmetic.pt'} after {seconds / 60:.1f} min, final loss {history.loss[-1]:.3f}")


if __name__ == "__main__":
    main()
