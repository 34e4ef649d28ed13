"""Compile every Triton kernel for an H100 (sm_90) without a GPU: Triton's compiler and ptxas run on any machine.

Catches what the CPU interpreter cannot: code that only the compiler rejects (constexpr rules, types, layouts), and
lost vectorisation of the multi-tensor optimizer kernels. Run by ``test_compile_for_gpu.py`` in a subprocess,
because the kernels must be imported without ``TRITON_INTERPRET``; prints one line per kernel and exits 1 if one
fails, 2 if the toolchain itself is unusable here. ``python tests/kernels/compile_for_gpu.py`` runs it by hand.
"""

from __future__ import annotations

import os
import re
import sys

os.environ.pop("TRITON_INTERPRET", None)

import triton  # noqa: E402
import triton.language as tl  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from minidiff.kernels import _triton_diffusion_loss as D  # noqa: E402
from minidiff.kernels import _triton_elementwise as E  # noqa: E402
from minidiff.kernels import _triton_orthogonalize as O  # noqa: E402
from minidiff.kernels import _triton_quantization as Q  # noqa: E402
from minidiff.kernels import _triton_signs as S  # noqa: E402

TARGET = GPUTarget("cuda", 90, 32)
F32 = "fp32"


def compile_kernel(fn, signature: dict, constexprs: dict, divisible=(), **options):
    """Compile as the runtime would for 16-byte aligned tensors (and the integer arguments in ``divisible``)."""
    full = {**signature, **dict.fromkeys(constexprs, "constexpr")}
    names = list(fn.arg_names)
    attrs = {
        (names.index(a),): [["tt.divisibility", 16]]
        for a, t in full.items()
        if t.startswith("*") or a in divisible
    }
    signature = {a: full[a] for a in names}
    return triton.compile(ASTSource(fn, signature, constexprs, attrs), target=TARGET, options=options)


def cases():
    table = {"OFFSETS": "*i64", "T": "i32", "CHUNK_T": "*i32", "CHUNK_START": "*i64", "NUMEL": "*i64"}
    for p in ("*fp32", "*bf16"):
        ptrs = {**table, "P0": p, "G0": p, "S0": "*fp32"}
        align = {
            "ALIGN_P": 4 if p == "*fp32" else 8,
            "ALIGN_G": 4 if p == "*fp32" else 8,
            "ALIGN_S": 4,
            "BLOCK": 1024,
        }
        adam = dict.fromkeys(["w1", "w2", "beta2", "eps", "decay", "step_size", "sqrt_bias2"], F32)
        yield f"adam {p}", E._adam_kernel, {**ptrs, **adam}, align, {}
        yield (
            f"lion {p}",
            E._lion_kernel,
            {**ptrs, **dict.fromkeys(["lr", "w1", "w2", "decay"], F32)},
            align,
            {},
        )
        names = ["lr", "w1", "w2", "beta2", "w3", "alpha", "eps", "decay", "bias1", "sqrt_bias2"]
        for fast in (True, False):
            yield (
                f"ademamix {p} fast={fast}",
                E._ademamix_kernel,
                {**ptrs, **dict.fromkeys(names, F32)},
                {**align, "HAS_FAST": fast},
                {},
            )
    q = {"Q1": "*u8", "ABSMAX1": "*fp32", "CODE1": "*fp32", "MIDS1": "*fp32"}
    q2 = {"Q2": "*u8", "ABSMAX2": "*fp32", "CODE2": "*fp32", "MIDS2": "*fp32"}
    warps = {"num_warps": 8}
    block = {"BLOCK": 2048}
    yield (
        "quantize",
        Q._quantize_kernel,
        {"X": "*bf16", "Q": "*u8", "ABSMAX": "*fp32", "MIDS": "*fp32", "n": "i32"},
        block,
        warps,
    )
    yield (
        "dequantize",
        Q._dequantize_kernel,
        {"Q": "*u8", "ABSMAX": "*fp32", "CODE": "*fp32", "OUT": "*bf16", "n": "i32"},
        block,
        warps,
    )
    adam8 = dict.fromkeys(["w1", "beta1", "w2", "beta2", "eps", "decay", "step_size", "sqrt_bias2"], F32)
    yield (
        "adam8bit",
        Q._adam8bit_kernel,
        {"P": "*fp32", "G": "*fp32", **q, **q2, "n": "i32", **adam8},
        block,
        warps,
    )
    lion8 = dict.fromkeys(["lr", "w1", "beta1", "w2", "beta2", "decay"], F32)
    yield "lion8bit", Q._lion8bit_kernel, {"P": "*bf16", "G": "*bf16", **q, "n": "i32", **lion8}, block, warps
    sizes = {"n": "i32", "n_bytes": "i32"}
    yield (
        "pack_signs",
        S._pack_kernel,
        {"X": "*fp32", "BITS": "*u8", "PARTIAL": "*fp32", **sizes, "n_programs": "i32"},
        {"BYTES": 512},
        {},
    )
    yield (
        "unpack_signs",
        S._unpack_kernel,
        {"BITS": "*u8", "SCALE": "*fp32", "OUT": "*bf16", **sizes},
        {"BYTES": 512},
        {},
    )
    strides = dict.fromkeys(["K", "N", "sxb", "sxm", "sxn", "scb", "scm", "scn", "sob", "som", "son"], "i32")
    tiles = {"UPCAST": False, "PRECISION": "tf32", "BM": 128, "BN": 128, "BK": 64}
    mma = {"num_warps": 8, "num_stages": 3}
    for has_c in (False, True):
        gram = {"X": "*bf16", "C": "*bf16", "OUT": "*bf16", **strides, "alpha": F32, "beta": F32}
        yield f"gram bf16 C={has_c}", O._gram_kernel, gram, {**tiles, "HAS_C": has_c}, mma
    strides = dict.fromkeys(["K", "N", "sbb", "sbm", "sbk", "sxb", "sxk", "sxn", "sob", "som", "son"], "i32")
    yield (
        "poly bf16",
        O._poly_kernel,
        {"B": "*bf16", "X": "*bf16", "OUT": "*bf16", **strides, "a": F32},
        tiles,
        mma,
    )
    rows = {"LOGITS": "*bf16", "ROWS": "*i64", "TARGETS": "*i64"}
    tail = {"V": "i32", "stride_row": "i64", "mask_id": "i32"}
    for has in (True, False):
        const = {"HAS_MASK_ID": has, "BLOCK_V": 4096}
        yield (
            f"ce forward mask_id={has}",
            D._forward_kernel,
            {**rows, "LSE": "*fp32", "CE": "*fp32", **tail},
            const,
            {},
        )
        grad = {
            "LOGITS": "*bf16",
            "GRAD_LOGITS": "*bf16",
            "ROWS": "*i64",
            "TARGETS": "*i64",
            "LSE": "*fp32",
            "GRAD_CE": "*fp32",
        }
        yield f"ce backward mask_id={has}", D._backward_kernel, {**grad, **tail}, const, {}


@triton.jit
def _probe(X):
    tl.store(X, 1.0)


def main() -> int:
    try:  # is the offline toolchain (LLVM, ptxas from the triton wheel) usable here at all?
        compile_kernel(_probe, {"X": "*fp32"}, {})
    except Exception as err:
        print(f"the offline CUDA toolchain is unavailable: {type(err).__name__}: {err}")
        return 2
    failures = 0
    for name, fn, signature, constexprs, options in cases():
        try:
            kernel = compile_kernel(
                fn, signature, constexprs, divisible=("n", "n_bytes", "V", "K", "N", "stride_row"), **options
            )
        except Exception as err:  # report every kernel, then fail
            failures += 1
            print(f"FAIL {name}: {type(err).__name__}: {str(err)[-2000:]}")
            continue
        ptx = kernel.asm["ptx"]
        vector = sorted(set(re.findall(r"ld\.global\.v[24]\.b32", ptx)))
        print(f"ok   {name:28s} vector loads: {', '.join(vector) or 'none'}")
        if name.startswith(("adam ", "lion ", "ademamix ")) and not vector:
            failures += 1
            print(f"FAIL {name}: the multi-tensor kernel lost its 128-bit loads")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
