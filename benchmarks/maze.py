"""FlexMDM vs a fixed-length MDM: subgoal-conditioned maze planning per tier, and length fidelity.

Kim et al., 2025, "Any-Order Flexible Length Masked Diffusion", arXiv 2509.01025, Table 1 (maze success, MDM →
FlexMDM: Easy 68.4 → 92.3 %, Medium 29.3 → 90.4 %, Hard 24.2 → 90.0 %) and its length-distribution figures.

**Maze** (``minidiff.data.tasks.maze_subgoal``, tiers ``easy`` 9x9 / ``medium`` 13x13 / ``hard`` 17x17, toy-scale
versions of the paper's set-up: one fixed maze per tier that the model never sees, prompt = ordered subgoals,
answer = the path through them). For every tier and seed, two models of the same size (a time-conditioned
Transformer; FlexMDM adds its insertion head), trained on the same examples for the same number of steps, answer
the same held-out subgoal lists:

* **MDM**: :class:`~minidiff.diffusion.MaskedDiffusion` on ``[BOS] subgoals path [EOS] [PAD ...]`` right-padded to
  the cap (the authors' baseline; the PAD tail is scored, so it has to learn where the path stops), sampled with
  the confidence sampler (margin order, greedy tokens), one token per step;
* **FlexMDM**: :class:`~minidiff.diffusion.flexible.FlexibleDiffusion` on the path alone with the subgoals as
  anchors, sampled from the subgoals by inserting the segments between them (``sample_flexible``, confidence
  variant, greedy tokens) with as many steps as the path cap.

Success = every cell open, every step to a 4-neighbour, subgoals visited in order, start and end at the first and
last subgoal. Reported per tier: mean over seeds ± standard error, and the generated answer lengths.

**Length fidelity**: both models unconditional, on balanced brackets with the length mixture {4, 8, 32, 64} (max
length 64, the paper's toy configuration) and on the lines (1-64 characters) of the shipped text; total variation
distance between the generated and the data's length distribution (text lengths in bins of 8). A third model,
FlexMDM with ``length_embedding=True`` (ours, not the paper's), is told the current length instead of having to
count it with relative positions only.

Full mode is resumable and can run in pieces: every finished (tier, seed) or (dataset, seed) unit is stored in
``--out`` (default ``tutorials/data/03_maze/results.json``; chapter 03 merges every ``*.json`` in that folder, so
separate pieces can run in parallel) and skipped next time::

    python benchmarks/maze.py --tiers easy --seeds 0 1 2       # one tier
    python benchmarks/maze.py --length brackets text --tiers    # only the length fidelity
    MINIDIFF_FAST=1 python benchmarks/maze.py                   # smoke run, a few minutes, writes nothing

Cost (one thread, measured on the 2-core machine with two or three runs at once): a (tier, seed) unit of 6,000
steps per model took 17-20 minutes on the easy tier, 30-32 on the medium and about 38 on the hard one, and a length
unit about 6 minutes per model; the whole full run is about 5 CPU-hours, hence the pieces. ``--steps`` /
``--length-steps`` override the step counts (the overrides are stored with the results, and a results file only resumes with the settings it was started with).

The table covers every unit in the results file; the closing JSON line holds ``mdm_success`` and
``flexmdm_success`` (the hardest tier present), ``mdm_length_tv`` and ``flexmdm_length_tv`` (brackets) and the
per-tier and per-dataset values. Fast-mode numbers are a smoke test, not the paper's protocol.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _common import emit  # noqa: E402

from minidiff.config import FAST, pick  # noqa: E402
from minidiff.data.tasks import get_task  # noqa: E402
from minidiff.data.tasks.brackets import empirical_distribution, total_variation  # noqa: E402
from minidiff.data.tasks.maze_subgoal import TIERS, MazeSubgoalTask  # noqa: E402
from minidiff.data.text import char_vocab, load_text  # noqa: E402
from minidiff.diffusion import MaskedDiffusion, sample_confidence  # noqa: E402
from minidiff.diffusion.flexible import FlexibleDiffusion, FlexMDM  # noqa: E402
from minidiff.diffusion.sampling.flexible import sample_flexible  # noqa: E402
from minidiff.nn import Transformer  # noqa: E402
from minidiff.train import fit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tutorials" / "data" / "03_maze" / "results.json"
PAPER = {
    "easy": (68.4, 92.3),
    "medium": (29.3, 90.4),
    "hard": (24.2, 90.0),
}  # Table 1, success % MDM, FlexMDM
BRACKET_LENGTHS = {4: 0.25, 8: 0.25, 32: 0.25, 64: 0.25}
TEXT_BIN = 8

SETTINGS = {
    "full": {"d_model": 64, "n_layers": 2, "n_heads": 4, "steps": 6000, "batch": 64, "lr": 2e-3,
             "n_train": 20000, "n_eval": 200, "length_steps": 1500, "length_samples": 400},
    "fast": {"d_model": 32, "n_layers": 2, "n_heads": 2, "steps": 60, "batch": 32, "lr": 2e-3,
             "n_train": 256, "n_eval": 16, "length_steps": 40, "length_samples": 32},
}  # fmt: skip


def backbone(vocab_size: int, max_len: int, cfg: dict, seed: int) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(vocab_size=vocab_size, d_model=cfg["d_model"], n_layers=cfg["n_layers"],
                       n_heads=cfg["n_heads"], max_len=max_len, time_conditioning=True)  # fmt: skip


def train(model, loss_fn, data, cfg: dict, seed: int, steps: int) -> float:
    """Train with AdamW, cosine decay; returns the wall-clock seconds."""
    start = time.perf_counter()
    fit(model, loss_fn, data, steps=steps, batch_size=cfg["batch"], lr=cfg["lr"], lr_schedule="cosine",
        warmup=min(100, steps // 10), seed=seed, progress=False)  # fmt: skip
    return time.perf_counter() - start


def length_summary(lengths: list[int]) -> dict:
    return {"mean": sum(lengths) / max(len(lengths), 1), "histogram": dict(sorted(Counter(lengths).items()))}


# ---------------------------------------------------------------------------------------------- maze
def maze_unit(tier: str, seed: int, cfg: dict) -> dict:
    """Train both models on one tier with one seed and evaluate them on the same held-out subgoal lists."""
    task = MazeSubgoalTask.tier(tier, maze_seed=seed)
    v = task.vocab
    train_ex = task.generate(cfg["n_train"], seed=1000 + seed)
    eval_ex = task.generate(cfg["n_eval"], seed=2000 + seed)
    width = 1 + task.max_subgoals + task.max_path + 1  # [BOS] subgoals path [EOS], padded to the cap
    out = {"tier": tier, "seed": seed, "data_lengths": length_summary([len(e.answer) for e in eval_ex])}

    mdm_proc = MaskedDiffusion(len(v), v.mask_id)
    mdm = backbone(len(v), width, cfg, seed)
    seconds = train(mdm, mdm_proc.loss, task.batch(train_ex, length=width), cfg, seed, cfg["steps"])
    prompts = task.batch(eval_ex, length=width)
    tokens, _ = sample_confidence(mdm, mdm_proc, prompts, score="margin",
                                  generator=torch.Generator().manual_seed(seed))  # fmt: skip
    metrics = task.evaluate(eval_ex, tokens)
    answers = [a for a in _cut(tokens, eval_ex, task)]
    out["mdm"] = metrics | {"seconds": seconds, "lengths": length_summary([len(a) for a in answers])}

    flex_proc = FlexibleDiffusion(len(v), v.mask_id, v.pad_id, max_length=task.max_path)
    flex = FlexMDM(backbone(len(v), task.max_path + 1, cfg, seed), task.max_path, pad_id=v.pad_id)
    seconds = train(flex, flex_proc.loss, task.anchored(train_ex), cfg, seed, cfg["steps"])
    tokens, trace = sample_flexible(flex, flex_proc, task.anchor_prompts(eval_ex), steps=task.max_path,
                                    method="confidence", temperature=0.0,
                                    generator=torch.Generator().manual_seed(seed))  # fmt: skip
    answers = trace.sequences()
    metrics = task.evaluate(eval_ex, answers)
    out["flexmdm"] = metrics | {"seconds": seconds, "lengths": length_summary([len(a) for a in answers])}
    return out


def _cut(tokens, examples, task):
    from minidiff.data.tasks import extract_answers

    return extract_answers(tokens, examples, task.vocab)


# ---------------------------------------------------------------------------------------------- lengths
def text_lines(max_len: int = 64) -> list[str]:
    return [line.strip() for line in load_text().splitlines() if 0 < len(line.strip()) <= max_len]


LENGTH_MODELS = ("mdm", "flexmdm", "flexmdm_len")  # flexmdm_len: FlexMDM(length_embedding=True), ours


def length_unit(dataset: str, seed: int, cfg: dict, done: dict | None = None) -> dict:
    """Unconditional MDM, FlexMDM and FlexMDM with a length embedding on ``"brackets"`` or ``"text"``: TV of the
    generated length distribution. Models already in ``done`` (a stored unit) are kept, not retrained."""
    g = torch.Generator().manual_seed(seed)
    if dataset == "brackets":
        task = get_task("brackets", lengths=BRACKET_LENGTHS)
        vocab, seqs = task.vocab, [e.answer for e in task.generate(max(cfg["n_train"], 2000), seed=seed)]
        binned = lambda n: n  # noqa: E731
    elif dataset == "text":
        lines = text_lines()
        vocab = char_vocab("".join(lines))
        order = torch.randperm(len(lines), generator=g).tolist()
        seqs = [vocab.encode(list(lines[i])) for i in order]
        binned = lambda n: (n - 1) // TEXT_BIN  # noqa: E731  (bin 0: 1-8 characters, ...)
    else:
        raise ValueError(f"dataset must be 'brackets' or 'text', got {dataset!r}")
    max_len, n = 64, cfg["length_samples"]
    data_tv_ref = empirical_distribution(binned(len(s)) for s in seqs)
    out = dict(done or {}) | {
        "dataset": dataset,
        "seed": seed,
        "data": length_summary([len(s) for s in seqs]),
    }

    def score(name: str, lengths: list[int], rows: list[list[int]]) -> None:
        tv = total_variation(data_tv_ref, empirical_distribution(binned(max(x, 1)) for x in lengths))
        out[name] = {"length_tv": tv, "lengths": length_summary(lengths)}
        if dataset == "brackets":
            from minidiff.data.tasks.brackets import is_balanced

            valid = [bool(x) and is_balanced(vocab.decode(r[:x])) for r, x in zip(rows, lengths)]
            out[name]["valid"] = sum(valid) / len(lengths)

    if "mdm" not in out:
        width = max_len + 2  # [BOS] sequence [EOS] [PAD ...]
        rows = torch.full((len(seqs), width), vocab.pad_id, dtype=torch.long)
        rows[:, 0] = vocab.bos_id
        for i, s in enumerate(seqs):
            rows[i, 1 : len(s) + 1] = torch.tensor(s)
            rows[i, len(s) + 1] = vocab.eos_id
        from minidiff.data.tasks.base import Batch

        prompt_mask = torch.zeros_like(rows, dtype=torch.bool)
        prompt_mask[:, 0] = True
        batch = Batch(rows, prompt_mask, (rows != vocab.pad_id) & ~prompt_mask, rows != vocab.pad_id,
                      torch.ones(len(seqs), dtype=torch.long))  # fmt: skip
        mdm_proc = MaskedDiffusion(len(vocab), vocab.mask_id)
        mdm = backbone(len(vocab), width, cfg, seed)
        train(mdm, mdm_proc.loss, batch, cfg, seed, cfg["length_steps"])
        tokens, _ = sample_confidence(mdm, mdm_proc, batch[:n], score="random", steps=width - 1, temperature=1.0,
                                      generator=g)  # fmt: skip
        mdm_lengths = []
        for row in tokens[:, 1:].tolist():
            stop = [i for i, t in enumerate(row) if t in (vocab.eos_id, vocab.pad_id)]
            mdm_lengths.append(stop[0] if stop else len(row))
        score("mdm", mdm_lengths, tokens[:, 1:].tolist())

    packed = torch.full((len(seqs), max_len), vocab.pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        packed[i, : len(s)] = torch.tensor(s)
    flex_proc = FlexibleDiffusion(len(vocab), vocab.mask_id, vocab.pad_id, max_length=max_len)
    for name, length_embedding in (("flexmdm", False), ("flexmdm_len", True)):
        if name in out:
            continue
        flex = FlexMDM(backbone(len(vocab), max_len + 1, cfg, seed), max_len, pad_id=vocab.pad_id,
                       length_embedding=length_embedding)  # fmt: skip
        train(flex, flex_proc.loss, packed, cfg, seed, cfg["length_steps"])
        gen = (
            torch.Generator().manual_seed(seed + 1) if length_embedding else g
        )  # the plain one keeps g's stream
        _, trace = sample_flexible(
            flex, flex_proc, batch_size=n, steps=max_len, method="tau_leaping", generator=gen
        )
        score(name, trace.lengths[-1].tolist(), trace.states[-1].tolist())
    return out


# ---------------------------------------------------------------------------------------------- report
def mean_se(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, math.nan
    var = sum((x - m) ** 2 for x in values) / (len(values) - 1)
    return m, math.sqrt(var / len(values))


def summarise(results: dict) -> dict:
    """Per tier / dataset: mean and standard error over the seeds present."""
    summary = {"maze": {}, "length": {}}
    for tier in TIERS:
        units = [u for u in results["maze"].values() if u["tier"] == tier]
        if units:
            summary["maze"][tier] = {
                "seeds": sorted(u["seed"] for u in units),
                **{
                    f"{m}_{k}": mean_se([u[m][k] for u in units])
                    for m in ("mdm", "flexmdm")
                    for k in ("correct", "valid_moves", "subgoals_in_order")
                },  # fmt: skip
                "data_len": mean_se([u["data_lengths"]["mean"] for u in units])[0],
                "mdm_len": mean_se([u["mdm"]["lengths"]["mean"] for u in units])[0],
                "flexmdm_len": mean_se([u["flexmdm"]["lengths"]["mean"] for u in units])[0],
            }
    for dataset in ("brackets", "text"):
        units = [u for u in results["length"].values() if u["dataset"] == dataset]
        if units:
            summary["length"][dataset] = {
                "seeds": sorted(u["seed"] for u in units),
                **{
                    f"{m}_tv": mean_se([u[m]["length_tv"] for u in units])
                    for m in LENGTH_MODELS
                    if all(m in u for u in units)
                },
            }
    return summary


def pm(value: tuple[float, float], scale: float = 100.0, digits: int = 1) -> str:
    m, se = value
    return f"{scale * m:.{digits}f}" + ("" if math.isnan(se) else f" ± {scale * se:.{digits}f}")


def report(results: dict) -> dict:
    summary = summarise(results)
    print(f"\nmode: {results['mode']}   settings: {json.dumps(results['settings'])}")
    print("\nmaze success (%), mean ± s.e. over seeds; paper Table 1 beside")
    print(f"{'tier':8} {'seeds':>8} {'MDM':>13} {'FlexMDM':>13} {'paper MDM':>10} {'paper Flex':>11} "
          f"{'len data/MDM/Flex':>19}")  # fmt: skip
    for tier, s in summary["maze"].items():
        lens = f"{s['data_len']:.1f}/{s['mdm_len']:.1f}/{s['flexmdm_len']:.1f}"
        print(f"{tier:8} {len(s['seeds']):>8} {pm(s['mdm_correct']):>13} {pm(s['flexmdm_correct']):>13} "
              f"{PAPER[tier][0]:>10} {PAPER[tier][1]:>11} {lens:>19}")  # fmt: skip
    print("\nlength fidelity: total variation to the data's length distribution (lower is better)")
    for dataset, s in summary["length"].items():
        with_len = (
            f"  FlexMDM + length embedding {pm(s['flexmdm_len_tv'], 1, 3)}" if "flexmdm_len_tv" in s else ""
        )
        print(f"{dataset:8} seeds {len(s['seeds'])}  MDM {pm(s['mdm_tv'], 1, 3)}  FlexMDM {pm(s['flexmdm_tv'], 1, 3)}"
              + with_len)  # fmt: skip
    figures = {"mode": results["mode"]}
    for tier, s in summary["maze"].items():
        figures |= {f"{tier}_mdm_success": s["mdm_correct"][0], f"{tier}_flexmdm_success": s["flexmdm_correct"][0],
                    f"{tier}_mdm_success_se": s["mdm_correct"][1], f"{tier}_flexmdm_success_se": s["flexmdm_correct"][1],
                    f"{tier}_seeds": len(s["seeds"])}  # fmt: skip
    if summary["maze"]:
        hardest = list(summary["maze"])[-1]
        figures |= {"hardest_tier": hardest, "mdm_success": summary["maze"][hardest]["mdm_correct"][0],
                    "flexmdm_success": summary["maze"][hardest]["flexmdm_correct"][0]}  # fmt: skip
    for dataset, s in summary["length"].items():
        figures |= {
            f"{dataset}_mdm_length_tv": s["mdm_tv"][0],
            f"{dataset}_flexmdm_length_tv": s["flexmdm_tv"][0],
        }
        if "flexmdm_len_tv" in s:
            figures[f"{dataset}_flexmdm_len_length_tv"] = s["flexmdm_len_tv"][0]
    if "brackets" in summary["length"]:
        figures |= {"mdm_length_tv": summary["length"]["brackets"]["mdm_tv"][0],
                    "flexmdm_length_tv": summary["length"]["brackets"]["flexmdm_tv"][0]}  # fmt: skip
    return {k: (None if v != v else round(v, 4)) if isinstance(v, float) else v for k, v in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiers", nargs="*", default=list(TIERS), choices=list(TIERS))
    parser.add_argument("--seeds", nargs="+", type=int, default=pick(full=[0, 1, 2], fast=[0]))
    parser.add_argument("--length", nargs="*", default=["brackets", "text"], choices=["brackets", "text"])
    parser.add_argument("--out", type=Path, default=None if FAST else DEFAULT_OUT,
                        help="results file (resumed and updated); default: none in fast mode")  # fmt: skip
    parser.add_argument("--fresh", action="store_true", help="ignore the units already in --out")
    parser.add_argument("--steps", type=int, default=None, help="override the maze training steps")
    parser.add_argument("--length-steps", type=int, default=None, help="override the length training steps")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    mode = "fast" if FAST else "full"
    cfg = dict(SETTINGS[mode])
    for key in ("steps", "length_steps"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    results = {"mode": mode, "settings": cfg, "maze": {}, "length": {}}
    if args.out is not None and args.out.exists() and not args.fresh:
        results = json.loads(args.out.read_text())
        if results["mode"] != mode or results["settings"] != cfg:
            sys.exit(
                f"{args.out} holds {results['mode']} results with other settings; pass --fresh to restart"
            )

    def save() -> None:
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")

    for tier in args.tiers:
        for seed in args.seeds:
            key = f"{tier}/{seed}"
            if key not in results["maze"]:
                start = time.perf_counter()
                results["maze"][key] = maze_unit(tier, seed, cfg)
                u = results["maze"][key]
                print(f"[{key}] MDM {u['mdm']['correct']:.3f}  FlexMDM {u['flexmdm']['correct']:.3f}  "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip
                save()
    for dataset in args.length:
        for seed in args.seeds:
            key = f"{dataset}/{seed}"
            done = results["length"].get(key)
            if done is None or any(m not in done for m in LENGTH_MODELS):
                start = time.perf_counter()
                results["length"][key] = u = length_unit(dataset, seed, cfg, done)
                tvs = "  ".join(f"{m} {u[m]['length_tv']:.3f}" for m in LENGTH_MODELS)
                print(f"[{key}] TV {tvs}  ({time.perf_counter() - start:.0f} s)", flush=True)
                save()
    emit(report(results))


if __name__ == "__main__":
    main()
