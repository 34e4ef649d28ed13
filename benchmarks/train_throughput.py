"""Forward+backward throughput of minidiff's Transformer against a Llama model from ``transformers``.

Both models have the same width, depth, heads, SwiGLU width and vocabulary, are built from configs (no
download), run in float32 on the same inputs with causal attention through scaled_dot_product_attention, and are
timed interleaved in the same process. Prints tokens/s for each and the ratio minidiff / transformers (goal on
CPU: >= 1.0), then one JSON line.

    python benchmarks/train_throughput.py            # MINIDIFF_FAST=1 for a quick smoke run
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
from minidiff.nn import Transformer, TransformerConfig  # noqa: E402


def build_pair(d_model: int, n_layers: int, n_heads: int, vocab: int, max_len: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = TransformerConfig(
        vocab_size=vocab, d_model=d_model, n_layers=n_layers, n_heads=n_heads, max_len=max_len, mask="causal"
    )
    ours = Transformer(cfg)
    llama_cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=d_model,
        intermediate_size=cfg.d_ff,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_heads,
        max_position_embeddings=max_len,
        rms_norm_eps=cfg.norm_eps,
        tie_word_embeddings=False,
        attn_implementation="sdpa",
    )
    theirs = LlamaForCausalLM(llama_cfg)
    return ours, theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-model", type=int, default=pick(full=256, fast=64))
    parser.add_argument("--layers", type=int, default=pick(full=4, fast=2))
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=256)
    parser.add_argument("--seq-len", type=int, default=pick(full=256, fast=64))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=pick(full=10, fast=3))
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument(
        "--cpu-time", action="store_true", help="time with process CPU time (robust on a shared machine)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    ours, theirs = build_pair(args.d_model, args.layers, args.heads, args.vocab, args.seq_len)
    n_ours = sum(p.numel() for p in ours.parameters())
    n_theirs = sum(p.numel() for p in theirs.parameters())
    x = torch.randint(0, args.vocab, (args.batch, args.seq_len))

    def step_ours():
        ours.zero_grad(set_to_none=True)
        logits = ours(x[:, :-1])
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten()).backward()

    def step_theirs():
        theirs.zero_grad(set_to_none=True)
        logits = theirs(input_ids=x[:, :-1]).logits
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten()).backward()

    clock = time.process_time if args.cpu_time else time.perf_counter
    seconds = time_interleaved(
        {"minidiff": step_ours, "transformers": step_theirs}, repeats=args.repeats, clock=clock
    )
    tokens = args.batch * (args.seq_len - 1)
    tps = {name: tokens / s for name, s in seconds.items()}
    print(
        f"device cpu, {torch.get_num_threads()} threads, {'CPU' if args.cpu_time else 'wall'} time; d_model {args.d_model}, layers {args.layers}, "
        f"heads {args.heads}, seq {args.seq_len}, batch {args.batch}"
    )
    print(f"parameters: minidiff {n_ours:,}  transformers {n_theirs:,}")
    for name in ("minidiff", "transformers"):
        print(f"{name:>13}: {tps[name]:10.0f} tokens/s  ({seconds[name] * 1e3:.1f} ms per fwd+bwd)")
    ratio = tps["minidiff"] / tps["transformers"]
    print(f"ratio minidiff / transformers: {ratio:.2f}x")
    emit(
        {
            "minidiff_tokens_per_s": round(tps["minidiff"]),
            "transformers_tokens_per_s": round(tps["transformers"]),
            "ratio_vs_transformers": round(ratio, 3),
        }
    )


if __name__ == "__main__":
    main()
