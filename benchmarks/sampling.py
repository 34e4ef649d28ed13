"""Discrete-diffusion samplers: speed and NFE at L = 128, and accuracy vs NFE on a task.

Part 1 (speed): every sampler of ``minidiff.diffusion`` generates ``--length`` (128) tokens per sequence from a
randomly initialised Transformer on CPU, timed interleaved in one process. Printed per sampler: steps, NFE (model
calls actually made), tokens per forward, generated tokens/s and its ratio to the ancestral sampler. An untrained
model is nearly uniform, so adaptive samplers (the threshold sampler, the ancestral cache) show their NFE on a
worst case here; part 2 shows them on a trained model.

Part 2 (accuracy vs NFE): a small masked-diffusion model is trained with ``minidiff.train.fit`` on 2-digit
addition (``arithmetic`` task; answer, EOS and PAD tail all generated, as LLaDA's SFT), then each sampler answers
held-out problems at several step budgets. Printed: NFE, exact-match accuracy, and the accuracy ratio to the
ancestral sampler at the same number of steps. Temperatures are each sampler's default: 1 for the ancestral,
first-hitting and ReMDM samplers, 0 (greedy candidates, as LLaDA) for the confidence-ordered ones; "ancestral
greedy" separates the effect of the temperature from that of the order. The uniform-state sampler needs a model trained on the uniform
process and is left out of part 2.

    python benchmarks/sampling.py            # MINIDIFF_FAST=1 for a smoke run (tiny model, short training)

Ends with one JSON line of headline figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _common import emit, time_interleaved  # noqa: E402

from minidiff.config import pick  # noqa: E402
from minidiff.diffusion import SAMPLERS, MaskedDiffusion, UniformDiffusion  # noqa: E402
from minidiff.nn import Transformer  # noqa: E402


def speed_configs(length: int) -> list[tuple[str, str, dict, bool]]:
    """(label, sampler name, keyword arguments, uses the uniform process)."""
    return [
        ("ancestral", "ancestral", {"steps": length}, False),
        ("ancestral x4 steps", "ancestral", {"steps": 4 * length}, False),
        ("first_hitting", "first_hitting", {}, False),
        ("confidence (L/2 steps)", "confidence", {"steps": length // 2}, False),
        ("confidence tau=0.9", "confidence", {"threshold": 0.9}, False),
        ("remdm loop", "remdm", {"steps": length}, False),
        ("semi_ar block 32", "semi_ar", {"block_length": 32, "steps": length // 2}, False),
        ("uniform", "uniform", {"steps": length}, True),
        ("uniform + corrector", "uniform", {"steps": length // 2, "corrector_steps": 1}, True),
    ]


def speed(args) -> dict:
    torch.manual_seed(0)
    vocab, mask_id = 32, 3
    model = Transformer(
        vocab_size=vocab, d_model=args.d_model, n_layers=args.layers, n_heads=4, max_len=args.length
    )
    model.eval()
    masked, uniform = MaskedDiffusion(vocab, mask_id), UniformDiffusion(vocab, mask_id=mask_id)
    runs, traces = {}, {}
    for label, name, kwargs, is_uniform in speed_configs(args.length):

        def run(label=label, name=name, kwargs=kwargs, is_uniform=is_uniform):
            gen = torch.Generator().manual_seed(1)
            process = uniform if is_uniform else masked
            _, traces[label] = SAMPLERS[name](
                model, process, batch_size=args.batch, length=args.length, generator=gen, **kwargs
            )

        runs[label] = run
    seconds = time_interleaved(
        runs, repeats=args.repeats, warmup=0, clock=time.process_time
    )  # each call runs for seconds already
    print(
        f"device cpu, {torch.get_num_threads()} threads; untrained Transformer d_model {args.d_model}, "
        f"layers {args.layers}, vocab {vocab}; batch {args.batch}, L = {args.length}; tokens per CPU second"
    )
    print(f"{'sampler':<24}{'steps':>7}{'NFE':>7}{'tok/fwd':>9}{'tokens/s':>11}{'vs ancestral':>14}")
    base = args.batch * args.length / seconds["ancestral"]
    figures = {}
    for label in runs:
        trace, tps = traces[label], args.batch * args.length / seconds[label]
        print(
            f"{label:<24}{trace.n_steps:>7}{trace.nfe:>7}{trace.tokens_per_forward:>9.2f}"
            f"{tps:>11.0f}{tps / base:>13.2f}x"
        )
        key = label.replace(" ", "_").replace("(", "").replace(")", "").replace("/", "").replace("=", "")
        figures[f"tokens_per_s_{key}"] = round(tps, 1)
        figures[f"nfe_{key}"] = trace.nfe
    return figures


def accuracy(args) -> dict:
    from minidiff.data import get_task
    from minidiff.train import fit

    torch.manual_seed(0)
    task = get_task("arithmetic", max_digits=2)
    train, test = task.generate(args.train_examples, seed=0), task.generate(args.test_examples, seed=1)
    length = 12  # [BOS] a + b = (up to 3 digits) [EOS], padded
    train_batch, test_batch = task.batch(train, length=length), task.batch(test, length=length)
    vocab = len(task.vocab)
    model = Transformer(
        vocab_size=vocab, d_model=args.task_d_model, n_layers=args.task_layers, n_heads=4, max_len=length
    )
    mdm = MaskedDiffusion(vocab, task.vocab.mask_id)
    start = time.perf_counter()
    history = fit(
        model, mdm.loss, train_batch, steps=args.train_steps, batch_size=64, lr=2e-3, lr_schedule="cosine",
        warmup=min(100, args.train_steps // 10), progress=False,
    )  # fmt: skip
    bound, se = mdm.bound(model, test_batch, n_samples=4, batch_size=256)
    print(
        f"\ntrained {args.train_steps} steps in {time.perf_counter() - start:.0f}s on {len(train)} problems "
        f"(2-digit addition); final loss {history.loss[-1]:.3f}, held-out NELBO {bound:.3f} ± {se:.3f} nats/token"
    )
    configs = [
        ("ancestral", "ancestral", {}),
        ("ancestral greedy", "ancestral", {"temperature": 0.0}),
        ("first_hitting", "first_hitting", {}),
        ("confidence max_prob", "confidence", {}),
        ("confidence margin", "confidence", {"score": "margin"}),
        ("confidence random", "confidence", {"score": "random"}),
        ("confidence tau=0.9", "confidence", {"threshold": 0.9}),
        ("remdm cap", "remdm", {"strategy": "cap", "eta": 0.05}),
        ("semi_ar block 2", "semi_ar", {"block_length": 2}),
    ]
    free = int((~test_batch.prompt_mask).sum(1).max())  # 7: answer, EOS and PAD after the shortest prompt
    semi_ar_blocks = -(-free // 2)  # "semi_ar block 2" needs steps that are a multiple of its 4 blocks
    budgets = [1, 2, 4, 8]
    print(
        f"{'sampler':<22}{'steps':>6}{'NFE':>6}{'accuracy':>10}{'vs ancestral':>14}   (same steps; auto: {budgets[-1]})"
    )
    figures, ancestral_acc = {}, {}
    for label, name, kwargs in configs:
        for steps in [None] if name == "first_hitting" or "threshold" in kwargs else budgets:
            if name == "semi_ar" and steps is not None and steps % semi_ar_blocks:
                continue
            step_kw = {} if steps is None else {"steps": steps}
            tokens, trace = SAMPLERS[name](
                model, mdm, test_batch, generator=torch.Generator().manual_seed(2), **kwargs, **step_kw
            )
            acc = task.evaluate(test, tokens)["correct"]
            if label == "ancestral":
                ancestral_acc[steps] = acc
            ref = ancestral_acc.get(steps if steps is not None else budgets[-1])
            ratio = f"{acc / ref:>13.2f}x" if ref else f"{'-':>14}"
            print(f"{label:<22}{steps or 'auto':>6}{trace.nfe:>6}{acc:>10.3f}{ratio}")
            key = label.replace(" ", "_").replace("=", "")
            figures[f"accuracy_{key}_steps{steps or 'auto'}"] = round(acc, 4)
    figures["task_nelbo"] = round(bound, 4)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--batch", type=int, default=pick(full=8, fast=2))
    parser.add_argument("--d-model", type=int, default=pick(full=128, fast=64))
    parser.add_argument("--layers", type=int, default=pick(full=4, fast=2))
    parser.add_argument("--repeats", type=int, default=pick(full=2, fast=1))
    parser.add_argument("--task-d-model", type=int, default=pick(full=128, fast=48))
    parser.add_argument("--task-layers", type=int, default=2)
    parser.add_argument("--train-steps", type=int, default=pick(full=3000, fast=60))
    parser.add_argument("--train-examples", type=int, default=pick(full=20000, fast=2000))
    parser.add_argument("--test-examples", type=int, default=pick(full=500, fast=64))
    parser.add_argument("--skip-accuracy", action="store_true", help="only the speed table")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (1 on a shared machine)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    figures = speed(args)
    if not args.skip_accuracy:
        figures.update(accuracy(args))
    emit(figures)


if __name__ == "__main__":
    main()
