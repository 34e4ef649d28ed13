"""GPU benchmark of minidiff's Triton kernels: achieved bandwidth or FLOP/s as a fraction of the device's peak, and
the speed ratio to each kernel's torch reference (and to ``torch.optim.AdamW(fused=True)`` for the Adam step).

    python benchmarks/kernels.py                  # on a CUDA machine; MINIDIFF_FAST=1 for smaller sizes
    python benchmarks/kernels.py --only adam newton_schulz
    python benchmarks/kernels.py --dry-run-cpu    # exercise this script on CPU through Triton's interpreter
                                                  # (tiny sizes; the timings mean nothing)

Every kernel is first checked against its reference on the benchmark's inputs (the max error is printed), then
timed with CUDA events, interleaved, median of ``--repeats``. Memory-bound kernels report GB/s over the minimum
bytes they must move (e.g. AdamW: read θ, g, m, v and write θ, m, v = 28 B per float32 element); Newton–Schulz
reports the FLOP/s of the unfused count, 5 steps × (4k²n + 2k³) for a k×n matrix, so a symmetric kernel that does
less work shows as a higher rate. Peaks come from a table of datasheet figures (dense, no sparsity), or from
``--peak-gbs`` / ``--peak-tflops``; the measured bandwidth of a device-to-device copy is printed alongside.
Goals on H100: element-wise optimizer kernels ≥ 80 % of HBM bandwidth; Newton–Schulz ≥ 1.5× the torch reference at
4096×4096 bf16. Without CUDA the script says so and prints the JSON line with nulls.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _common import emit  # noqa: E402

from minidiff.config import pick  # noqa: E402
from minidiff.kernels import triton_available  # noqa: E402

KERNELS = ("adam", "lion", "ademamix", "quantize", "dequantize", "adam8bit", "pack_signs", "unpack_signs",
           "masked_diffusion_loss", "newton_schulz")  # fmt: skip

# Datasheet peaks: HBM GB/s and dense bf16 tensor-core TFLOP/s. First match wins: specific names first.
PEAKS = {
    "H100 SXM": (3350.0, 989.0),
    "H100 NVL": (3900.0, 835.0),
    "H100 PCIe": (2000.0, 756.0),
    "H100": (3350.0, 989.0),  # "NVIDIA H100 80GB HBM3" is the SXM part
    "GH200": (4000.0, 989.0),
    "H200": (4800.0, 989.0),
    "A100-SXM4-80GB": (2039.0, 312.0),
    "A100-SXM4-40GB": (1555.0, 312.0),
    "A100 80GB PCIe": (1935.0, 312.0),
    "A100": (1555.0, 312.0),
    "L40S": (864.0, 362.0),
    "A10": (600.0, 125.0),
}


def json_keys() -> list[str]:
    keys = ["device", "peak_gbs", "peak_tflops", "copy_gbs"]
    for name in KERNELS:
        keys += [f"{name}_frac_peak", f"{name}_speedup_vs_torch"]
    return keys + ["adam_speedup_vs_fused_adamw", "adam8bit_speedup_vs_fused_adamw"]


def device_peaks(name: str) -> tuple[float | None, float | None]:
    for key, peaks in PEAKS.items():  # most specific first
        if all(part.lower() in name.lower() for part in key.split()):
            return peaks
    return None, None


# --------------------------------------------------------------------------- timing
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(
    fns: dict[str, Callable[[], object]], device: torch.device, repeats: int, warmup: int = 3
) -> dict[str, float]:
    """Median milliseconds per call, calls interleaved (CUDA events on GPU, wall clock on CPU)."""
    import time

    for fn in fns.values():
        for _ in range(warmup):
            fn()
    synchronize(device)
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                samples[name].append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn()
                samples[name].append(1e3 * (time.perf_counter() - t0))
    return {k: sorted(v)[len(v) // 2] for k, v in samples.items()}


def max_error(a, b) -> float:
    a, b = (a if isinstance(a, (list, tuple)) else [a]), (b if isinstance(b, (list, tuple)) else [b])
    return max(
        float((x.detach().float() - y.detach().float()).abs().max()) if x.numel() else 0.0
        for x, y in zip(a, b)
    )


# --------------------------------------------------------------------------- inputs
def tensor_sizes(total: int, count: int) -> list[int]:
    """``count`` tensor sizes summing to about ``total``, from large to small (a model's weights, norms, biases)."""
    weights = torch.logspace(0, -2, count)
    return [max(1, int(total * w / weights.sum())) for w in weights.tolist()]


def state_lists(sizes, device, n_states: int, param_dtype=torch.float32):
    gen = torch.Generator(device=device).manual_seed(0)
    params = [torch.randn(n, device=device, generator=gen).to(param_dtype) for n in sizes]
    grads = [torch.randn(n, device=device, generator=gen).to(param_dtype) for n in sizes]
    states = [[torch.rand(n, device=device, generator=gen) * 1e-3 for n in sizes] for _ in range(n_states)]
    return params, grads, states


# --------------------------------------------------------------------------- benchmarks
def bench_elementwise(name: str, device, total: int, count: int, repeats: int) -> dict:
    from minidiff import kernels

    n_states = {"adam": 2, "lion": 1, "ademamix": 3}[name]
    bytes_per_element = {"adam": 28, "lion": 20, "ademamix": 36}[name]
    sizes = tensor_sizes(total, count)
    params, grads, states = state_lists(sizes, device, n_states)
    hp = dict(lr=1e-3, weight_decay=0.01)
    if name == "adam":
        step = lambda b, p, s: kernels.adam_step_(
            p, grads, *s, beta1=0.9, beta2=0.999, eps=1e-8, step=10, backend=b, **hp
        )
    elif name == "lion":
        step = lambda b, p, s: kernels.lion_step_(p, grads, *s, beta1=0.9, beta2=0.99, backend=b, **hp)
    else:
        step = lambda b, p, s: kernels.ademamix_step_(p, grads, s[0], s[1], s[2], beta1=0.9, beta2=0.999, beta3=0.9999,
                                                      alpha=5.0, eps=1e-8, step=10, backend=b, **hp)  # fmt: skip
    copies = {
        b: ([p.clone() for p in params], [[t.clone() for t in lst] for lst in states])
        for b in ("torch", "triton")
    }
    for b, (p, s) in copies.items():
        step(b, p, s)
    error = max_error(copies["triton"][0], copies["torch"][0])
    fns = {b: (lambda b=b: step(b, *copies[b])) for b in ("torch", "triton")}
    if name == "adam":
        ps = [torch.nn.Parameter(p.clone()) for p in params]
        for p, g in zip(ps, grads):
            p.grad = g
        fused = torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.01, fused=True)
        fns["fused_adamw"] = fused.step
    ms = time_ms(fns, device, repeats)
    n = sum(sizes)
    return {
        "ms": ms,
        "gbs": bytes_per_element * n / ms["triton"] / 1e6,
        "error": error,
        "elements": n,
        "tensors": count,
    }


def bench_quantization(name: str, device, numel: int, repeats: int) -> dict:
    from minidiff import kernels
    from minidiff.optim.quantize import create_dynamic_map

    signed, unsigned = create_dynamic_map(True).to(device), create_dynamic_map(False).to(device)
    block = 2048
    x = torch.randn(numel, device=device) * 1e-3
    q, absmax = kernels.quantize_blockwise(x, signed, block, backend="torch")
    if name == "quantize":
        run = lambda b: kernels.quantize_blockwise(x, signed, block, backend=b)
        error = max_error(run("triton")[0].int(), run("torch")[0].int())
        moved = 5 * numel
    elif name == "dequantize":
        run = lambda b: kernels.dequantize_blockwise(q, absmax, signed, block, backend=b)
        error = max_error(run("triton"), run("torch"))
        moved = 5 * numel
    else:  # adam8bit: read θ, g (fp32) and two uint8 states, write θ and the states
        p, g = torch.randn(numel, device=device), torch.randn(numel, device=device) * 1e-2
        q2, absmax2 = kernels.quantize_blockwise(x.abs(), unsigned, block, backend="torch")
        copies = {
            b: [p.clone(), q.clone(), absmax.clone(), q2.clone(), absmax2.clone()]
            for b in ("torch", "triton")
        }

        def run(b):
            pp, s1, a1, s2, a2 = copies[b]
            kernels.adam8bit_step_(pp, g, s1, a1, signed, s2, a2, unsigned, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                                   weight_decay=0.01, step=10, block_size=block, backend=b)  # fmt: skip

        run("torch")
        run("triton")
        error = max_error(copies["triton"][0], copies["torch"][0])
        moved = 18 * numel
    fns = {b: (lambda b=b: run(b)) for b in ("torch", "triton")}
    if name == "adam8bit":
        param = torch.nn.Parameter(torch.randn(numel, device=device))
        param.grad = torch.randn(numel, device=device)
        fns["fused_adamw"] = torch.optim.AdamW([param], lr=1e-3, fused=True).step
    ms = time_ms(fns, device, repeats)
    return {"ms": ms, "gbs": moved / ms["triton"] / 1e6, "error": error, "elements": numel}


def bench_signs(name: str, device, numel: int, repeats: int) -> dict:
    from minidiff import kernels

    x = torch.randn(numel, device=device)
    bits, scale = kernels.pack_signs(x, backend="torch")
    if name == "pack_signs":
        run = lambda b: kernels.pack_signs(x, backend=b)
        error = max_error(run("triton")[0].int(), bits.int())
    else:
        run = lambda b: kernels.unpack_signs(bits, scale, numel, backend=b)
        error = max_error(run("triton"), run("torch"))
    ms = time_ms({b: (lambda b=b: run(b)) for b in ("torch", "triton")}, device, repeats)
    return {"ms": ms, "gbs": (4 + 1 / 8) * numel / ms["triton"] / 1e6, "error": error, "elements": numel}


def bench_masked_loss(device, batch: int, length: int, vocab: int, repeats: int) -> dict:
    from minidiff import kernels

    gen = torch.Generator(device=device).manual_seed(0)
    logits = torch.randn(batch, length, vocab, device=device, generator=gen).bfloat16().requires_grad_()
    targets = torch.randint(0, vocab - 1, (batch, length), device=device, generator=gen)
    masked = torch.rand(batch, length, device=device, generator=gen) < 0.5
    weights = torch.rand(batch, 1, device=device, generator=gen) * 5

    def run(b):
        loss = kernels.masked_diffusion_loss(
            logits, targets, masked, weights, mask_id=vocab - 1, reduction="sum", backend=b
        )
        (grad,) = torch.autograd.grad(loss, logits)
        return loss, grad

    error = max_error(list(run("triton")), list(run("torch")))
    ms = time_ms({b: (lambda b=b: run(b)) for b in ("torch", "triton")}, device, repeats)
    n_masked = int(masked.sum())
    # forward reads the masked rows; backward reads them again and writes the whole gradient
    moved = 2 * (2 * n_masked * vocab) + 2 * batch * length * vocab
    return {"ms": ms, "gbs": moved / ms["triton"] / 1e6, "error": error, "elements": batch * length * vocab}


def bench_newton_schulz(device, size: int, repeats: int, dtype=torch.bfloat16) -> dict:
    from minidiff import kernels

    G = torch.randn(size, size, device=device)
    run = lambda b: kernels.newton_schulz(G, 5, "muon", dtype=dtype, backend=b)
    error = max_error(run("triton"), run("torch"))
    ms = time_ms({b: (lambda b=b: run(b)) for b in ("torch", "triton")}, device, repeats)
    k = n = size
    flops = 5 * (4 * k * k * n + 2 * k**3)
    return {"ms": ms, "tflops": flops / ms["triton"] / 1e9, "error": error, "size": size}


def copy_bandwidth(device, numel: int, repeats: int) -> float:
    src = torch.empty(numel, device=device)
    dst = torch.empty_like(src)
    ms = time_ms({"copy": lambda: dst.copy_(src)}, device, repeats)["copy"]
    return 8 * numel / ms / 1e6


# --------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=KERNELS, default=list(KERNELS))
    parser.add_argument("--repeats", type=int, default=pick(full=20, fast=5))
    parser.add_argument("--peak-gbs", type=float, default=None, help="override the HBM bandwidth peak (GB/s)")
    parser.add_argument(
        "--peak-tflops", type=float, default=None, help="override the bf16 tensor-core peak (TFLOP/s)"
    )
    parser.add_argument(
        "--dry-run-cpu", action="store_true", help="run on CPU through Triton's interpreter (tiny sizes)"
    )
    args = parser.parse_args()
    figures: dict = dict.fromkeys(json_keys())

    if args.dry_run_cpu:
        os.environ["TRITON_INTERPRET"] = "1"  # before any Triton kernel module is imported
        device = torch.device("cpu")
        sizes = dict(total=6000, count=4, numel=5000, batch=2, length=8, vocab=300, ns=48, repeats=2)
    elif torch.cuda.is_available():
        device = torch.device("cuda")
        sizes = dict(total=pick(full=2**26, fast=2**22), count=pick(full=64, fast=16), numel=pick(full=2**26, fast=2**22),
                     batch=pick(full=16, fast=4), length=pick(full=1024, fast=256), vocab=pick(full=32768, fast=8192),
                     ns=pick(full=4096, fast=1024), repeats=args.repeats)  # fmt: skip
    else:
        print("no CUDA device: skipping GPU kernel benchmark")
        emit(figures)
        return
    if not triton_available():
        print("triton is not installed (pip install 'minidiff[triton]'): skipping GPU kernel benchmark")
        emit(figures)
        return

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (Triton interpreter dry run)"
    peak_gbs, peak_tflops = device_peaks(name) if device.type == "cuda" else (None, None)
    peak_gbs, peak_tflops = args.peak_gbs or peak_gbs, args.peak_tflops or peak_tflops
    figures.update(device=name, peak_gbs=peak_gbs, peak_tflops=peak_tflops)
    figures["copy_gbs"] = round(copy_bandwidth(device, sizes["numel"], sizes["repeats"]), 1)
    print(f"device: {name}; peaks: {peak_gbs} GB/s, {peak_tflops} TFLOP/s (bf16 dense); "
          f"device-to-device copy: {figures['copy_gbs']} GB/s")  # fmt: skip
    repeats = sizes["repeats"]
    for kernel in args.only:
        if kernel in ("adam", "lion", "ademamix"):
            r = bench_elementwise(kernel, device, sizes["total"], sizes["count"], repeats)
        elif kernel in ("quantize", "dequantize", "adam8bit"):
            r = bench_quantization(kernel, device, sizes["numel"], repeats)
        elif kernel in ("pack_signs", "unpack_signs"):
            r = bench_signs(kernel, device, sizes["numel"], repeats)
        elif kernel == "masked_diffusion_loss":
            r = bench_masked_loss(device, sizes["batch"], sizes["length"], sizes["vocab"], repeats)
        else:
            r = bench_newton_schulz(device, sizes["ns"], repeats)
        ms = r["ms"]
        speedup = ms["torch"] / ms["triton"]
        figures[f"{kernel}_speedup_vs_torch"] = round(speedup, 3)
        if "fused_adamw" in ms:
            figures[f"{kernel}_speedup_vs_fused_adamw"] = round(ms["fused_adamw"] / ms["triton"], 3)
        if "gbs" in r:
            rate, peak, unit = r["gbs"], peak_gbs, "GB/s"
        else:
            rate, peak, unit = r["tflops"], peak_tflops, "TFLOP/s"
        fraction = rate / peak if peak else None
        figures[f"{kernel}_frac_peak"] = None if fraction is None else round(fraction, 3)
        others = ", ".join(f"{k} {v:.3f} ms" for k, v in ms.items())
        print(f"{kernel:>22}: {rate:9.1f} {unit}" + (f" ({fraction:.0%} of peak)" if fraction else "")
              + f"; {speedup:.2f}x vs torch; [{others}]; max |Δ| vs reference {r['error']:.2e}")  # fmt: skip
    emit(figures)


if __name__ == "__main__":
    main()
