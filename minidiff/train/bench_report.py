"""Tables from a benchmark sweep: speedups per run, summaries across seeds, the headline, rank flips, the CLI.

Speedups are **paired by seed**: the optimizer's run with seed s is read off AdamW's curve from its runs with
seed s (same initialisation, same batches), which cancels most of the seed-to-seed noise shared by both; the
spread reported is across seeds. Rows are plain dicts (tidy data), so a chapter or a CSV reader needs nothing
but the standard library.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

from minidiff.train.bench_speedup import speedup

__all__ = [
    "speedup_rows",
    "summarize",
    "headline",
    "ranking_changes",
    "rank_flips",
    "detuned_baseline",
    "checkpoint_vs_final",
    "text_table",
    "speedup_table",
    "write_csv",
    "cli",
]


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _baseline_curves(finals: list[dict], baseline: str) -> tuple[dict, dict]:
    by_seed: dict[tuple, dict[int, float]] = defaultdict(dict)
    for r in finals:
        if r["optimizer"] == baseline:
            by_seed[(r["size"], r["seed"])][r["tokens"]] = r["val_loss"]
    pooled: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for (size, _), curve in by_seed.items():
        for tokens, loss in curve.items():
            if _finite(loss):
                pooled[size][tokens].append(loss)
    mean = {size: {t: sum(v) / len(v) for t, v in curve.items()} for size, curve in pooled.items()}
    return by_seed, mean


def speedup_rows(finals: list[dict], baseline: str = "adamw", method: str = "interp") -> list[dict]:
    """One row per final run of every non-baseline optimizer: its speedup over ``baseline``, with the flag
    (``ok``/``above``/``below``/``extrapolated``) and the bound of :class:`~minidiff.train.bench_speedup.Speedup`.

    The baseline curve is the one of the same seed when it exists (``paired``), else the seed mean.
    """
    by_seed, mean = _baseline_curves(finals, baseline)
    if not mean:
        raise ValueError(f"no final runs of the baseline {baseline!r}: speedups need its curve")
    out = []
    for r in finals:
        if r["optimizer"] == baseline:
            continue
        curve = by_seed.get((r["size"], r["seed"]))
        paired = curve is not None and sum(_finite(v) for v in curve.values()) >= 2
        curve = curve if paired else mean[r["size"]]
        s = speedup(list(curve), list(curve.values()), r["tokens"], r["val_loss"], method=method)
        out.append(
            {
                **{k: r[k] for k in ("optimizer", "size", "ratio", "tokens", "seed", "lr", "val_loss")},
                "speedup": s.value,
                "flag": s.flag,
                "bound": s.bound,
                "d_eff": s.d_eff,
                "paired": paired,
                "method": method,
            }
        )
    return out


def _speedup_text(rows: list[dict]) -> str:
    ok = [r["speedup"] for r in rows if r["flag"] in ("ok", "extrapolated")]
    out = [r for r in rows if r["flag"] not in ("ok", "extrapolated")]
    text = ""
    if ok:
        mark = "*" if any(r["flag"] == "extrapolated" for r in rows) else ""
        text = f"{sum(ok) / len(ok):.2f}{mark}" + (f" [{min(ok):.2f}, {max(ok):.2f}]" if len(ok) > 1 else "")
    if out:
        bounds = [r["bound"] for r in out]
        side = {r["flag"] for r in out}
        if side == {"above"}:
            clause = f"> {min(bounds):.2f}"
        elif side == {"below"}:
            clause = f"< {max(bounds):.2f}"
        else:
            clause = "out of range"
        text = f"{text} ({len(out)}/{len(rows)} seeds {clause})" if ok else clause
    return text


def summarize(finals: list[dict], speedups: list[dict] | None = None) -> list[dict]:
    """One row per (optimizer, size, ratio): final loss across seeds (mean, min, max), the tuned
    hyperparameters, and the speedup across seeds (mean, min, max over in-range seeds, and a display text)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in finals:
        groups[(r["optimizer"], r["size"], r["ratio"])].append(r)
    sp: dict[tuple, list[dict]] = defaultdict(list)
    for r in speedups or []:
        sp[(r["optimizer"], r["size"], r["ratio"])].append(r)
    order = {name: i for i, name in enumerate(dict.fromkeys(r["optimizer"] for r in finals))}
    sizes = {name: i for i, name in enumerate(dict.fromkeys(r["size"] for r in finals))}
    out = []
    for key in sorted(groups, key=lambda k: (order[k[0]], sizes[k[1]], k[2])):
        rows = sorted(groups[key], key=lambda r: r["seed"])
        losses = [r["val_loss"] for r in rows if _finite(r["val_loss"])]
        first = rows[0]
        row = {
            "optimizer": key[0],
            "size": key[1],
            "ratio": key[2],
            "tokens": first["tokens"],
            "n_params": first["n_params"],
            "lr": first["lr"],
            "second": first["second"],
            "second_value": first["second_value"],
            "lr_edge": first.get("lr_edge", ""),
            "second_edge": first.get("second_edge", False),
            "n_seeds": len(rows),
            "loss_mean": sum(losses) / len(losses) if losses else math.nan,
            "loss_min": min(losses, default=math.nan),
            "loss_max": max(losses, default=math.nan),
        }
        srows = sp.get(key, [])
        ok = [r["speedup"] for r in srows if r["flag"] in ("ok", "extrapolated")]
        row |= {
            "speedup_mean": sum(ok) / len(ok) if ok else math.nan,
            "speedup_min": min(ok, default=math.nan),
            "speedup_max": max(ok, default=math.nan),
            "speedup_flags": ",".join(r["flag"] for r in srows),
            "speedup_bound": min((r["bound"] for r in srows if r["flag"] == "above"), default=math.nan)
            if not ok
            else math.nan,
            "speedup_text": _speedup_text(srows) if srows else "",
        }
        out.append(row)
    return out


def _geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else math.nan


def headline(finals: list[dict], speedups: list[dict], baseline: str = "adamw") -> dict[str, dict]:
    """``{optimizer: {"speedup", "spread", "lr", ...}}``: the geometric mean of the in-range speedups over every
    size, ratio and seed; ``spread`` = [min, max] over seeds of the per-seed geometric means; ``lr`` = the tuned
    LR at the largest size and largest common ratio; counts of cells out of AdamW's range."""
    out: dict[str, dict] = {}
    largest = list(dict.fromkeys(r["size"] for r in finals))[-1]
    others = [r["ratio"] for r in finals if r["optimizer"] != baseline]
    common = max(others) if others else max(r["ratio"] for r in finals)
    for name in dict.fromkeys(r["optimizer"] for r in finals):
        mine = [r for r in finals if r["optimizer"] == name and r["size"] == largest]
        at = [r for r in mine if r["ratio"] == common] or mine
        lr = min(at, key=lambda r: (-r["ratio"], r["seed"]))["lr"]
        if name == baseline:
            out[name] = {"speedup": 1.0, "spread": [1.0, 1.0], "lr": lr}
            continue
        rows = [r for r in speedups if r["optimizer"] == name]
        ok = [r for r in rows if r["flag"] == "ok"]
        per_seed = [
            _geomean([r["speedup"] for r in ok if r["seed"] == s]) for s in sorted({r["seed"] for r in ok})
        ]
        out[name] = {
            "speedup": round(_geomean([r["speedup"] for r in ok]), 3) if ok else None,
            "spread": [round(min(per_seed), 3), round(max(per_seed), 3)] if per_seed else None,
            "lr": lr,
            "cells": len(rows),
            "above_range": sum(r["flag"] == "above" for r in rows),
            "below_range": sum(r["flag"] == "below" for r in rows),
        }
    return out


def _at_fraction(curve: dict, fraction: float) -> tuple[int, float]:
    steps = curve["step"]
    i = min(range(len(steps)), key=lambda j: abs(steps[j] / steps[-1] - fraction))
    return i, curve["val_loss"][i]


def ranking_changes(finals: list[dict], at: float = 0.5) -> list[dict]:
    """Per (size, ratio, seed) run by several optimizers: their ranking by the validation curve at fraction
    ``at`` of training and at the end (same held-out subset), and whether it changed."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in finals:
        if r["curve"]["step"]:
            groups[(r["size"], r["ratio"], r["seed"])].append(r)
    out = []
    for (size, ratio, seed), rows in groups.items():
        if len({r["optimizer"] for r in rows}) < 2:
            continue
        mid = sorted(rows, key=lambda r: _at_fraction(r["curve"], at)[1])
        end = sorted(rows, key=lambda r: r["curve"]["val_loss"][-1])
        names = lambda rs: [r["optimizer"] for r in rs]
        out.append(
            {"size": size, "ratio": ratio, "seed": seed, "at": at, "ranking_mid": names(mid),
             "ranking_end": names(end), "changed": names(mid) != names(end)}
        )  # fmt: skip
    return out


def rank_flips(runs: list[dict], at: float = 0.5, tol: float = 0.005) -> list[dict]:
    """Pairs of runs with the same size, budget and seed whose order by validation loss at fraction ``at`` of
    training is the reverse of their order at the end, both gaps above ``tol`` nats; the clearest first.

    ``kind`` is ``"optimizers"`` (two tuned optimizers) or ``"lr"`` (one optimizer at two learning rates)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in runs:
        if len(r["curve"]["step"]) >= 2 and _finite(r["val_loss"]):
            groups[(r["size"], r["ratio"], r["seed"])].append(r)
    out = []
    for (size, ratio, seed), rows in groups.items():
        for a, b in combinations(rows, 2):
            same_opt = a["optimizer"] == b["optimizer"]
            if (same_opt and a["hparams"] != b["hparams"]) or (
                not same_opt and not (a["final"] and b["final"])
            ):
                continue
            i, a_mid = _at_fraction(a["curve"], at)
            _, b_mid = _at_fraction(b["curve"], at)
            a_end, b_end = a["curve"]["val_loss"][-1], b["curve"]["val_loss"][-1]
            gap_mid, gap_end = a_mid - b_mid, a_end - b_end
            if gap_mid * gap_end < 0 and min(abs(gap_mid), abs(gap_end)) > tol:
                out.append(
                    {
                        "size": size, "ratio": ratio, "seed": seed, "kind": "lr" if same_opt else "optimizers",
                        "a": a["key"], "b": b["key"], "label_a": f"{a['optimizer']} lr={a['lr']:g}",
                        "label_b": f"{b['optimizer']} lr={b['lr']:g}", "at_step": a["curve"]["step"][i],
                        "gap_mid": gap_mid, "gap_end": gap_end, "score": min(abs(gap_mid), abs(gap_end)),
                    }
                )  # fmt: skip
    return sorted(out, key=lambda f: -f["score"])


def detuned_baseline(
    runs: list[dict], baseline: str = "adamw", factor: float = 0.5, seed: int = 0
) -> list[dict]:
    """The baseline as a careless benchmark would run it: at every (size, ratio), its run with seed ``seed`` at
    ``factor`` x its tuned LR (taken from the sweep's LR grids; cells whose grid lacks that LR are left out).
    Returned as final rows, so :func:`speedup_rows` can measure the other optimizers against it."""
    tuned = {
        (r["size"], r["ratio"]): r
        for r in runs
        if r["optimizer"] == baseline and r["final"] and r["seed"] == seed
    }
    out = []
    for r in runs:
        t = tuned.get((r["size"], r["ratio"]))
        if t and r["optimizer"] == baseline and r["seed"] == seed and r["hparams"] == t["hparams"]:
            if math.isclose(r["lr"], factor * t["lr"], rel_tol=1e-3):
                out.append({**r, "final": True})
    return out


def checkpoint_vs_final(finals: list[dict], optimizer: str = "adamw") -> list[dict]:
    """For each run of ``optimizer`` and the run with twice its budget (same size and seed): the validation loss
    at the end of the short run and at the longer run's checkpoint nearest the same token count (same held-out
    subset). The checkpoint has not decayed its LR yet, so it reads worse: a budget needs its own run."""
    runs = {(r["size"], r["seed"], r["tokens"]): r for r in finals if r["optimizer"] == optimizer}
    out = []
    for (size, seed, tokens), short in runs.items():
        long = next(
            (
                r
                for (s, sd, t), r in runs.items()
                if (s, sd) == (size, seed) and abs(t - 2 * tokens) <= 2 * 1024
            ),
            None,
        )
        if long is None or not short["curve"]["tokens"]:
            continue
        c = long["curve"]
        i = min(range(len(c["tokens"])), key=lambda j: abs(c["tokens"][j] - tokens))
        out.append(
            {"size": size, "seed": seed, "ratio": short["ratio"], "tokens": tokens,
             "end_of_own_run": short["curve"]["val_loss"][-1], "checkpoint_of_2x_run": c["val_loss"][i],
             "checkpoint_tokens": c["tokens"][i]}
        )  # fmt: skip
    sizes = {name: i for i, name in enumerate(dict.fromkeys(r["size"] for r in finals))}
    return sorted(out, key=lambda r: (sizes[r["size"]], r["ratio"], r["seed"]))


def text_table(summary: list[dict], column: str = "loss") -> str:
    """A plain-text table, one line per (size, ratio), one column per optimizer: the final loss across seeds
    (``column="loss"``: mean ± half the min-max range) or the speedup text (``column="speedup"``)."""
    optimizers = list(dict.fromkeys(r["optimizer"] for r in summary))
    if column == "speedup":  # the baseline has no speedup column
        optimizers = [o for o in optimizers if any(r["speedup_text"] for r in summary if r["optimizer"] == o)]
    cells: dict[tuple, dict[str, str]] = defaultdict(dict)
    for r in summary:
        if column == "loss":
            text = f"{r['loss_mean']:.4f} ± {(r['loss_max'] - r['loss_min']) / 2:.4f}"
        else:
            text = r["speedup_text"]
        cells[(r["size"], r["ratio"], r["tokens"])][r["optimizer"]] = text
    if column == "speedup":  # budgets only the baseline ran have no speedups
        cells = {k: c for k, c in cells.items() if any(c.get(o) for o in optimizers)}
    header = ["size", "ratio", "tokens", *optimizers]
    lines = [
        [s, f"{ratio:g}x", f"{tokens:,}", *(c.get(o, "") for o in optimizers)]
        for (s, ratio, tokens), c in cells.items()
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    fmt = lambda row: "  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip()
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, lines)])


def speedup_table(summary: list[dict], baseline: str = "adamw") -> str:
    """A plain-text table, one line per (size, ratio, optimizer) where an optimizer other than ``baseline`` ran:
    the final loss (mean ± half the min-max range over seeds), the speedup over ``baseline`` (mean [min, max] over
    seeds, or a bound), the tuned LR and the tuned second hyperparameter. A ``*`` after a tuned value marks one on
    an edge of what the sweep tried (the optimum may lie beyond it)."""
    if not summary:
        raise ValueError("summary must hold at least one row (BenchResult.summary())")
    if baseline not in {r["optimizer"] for r in summary}:
        raise ValueError(f"baseline {baseline!r} is not among the optimizers of the summary")
    optimizers = list(dict.fromkeys(r["optimizer"] for r in summary))
    sizes = list(dict.fromkeys(r["size"] for r in summary))
    cells = {(r["size"], r["ratio"]) for r in summary if r["optimizer"] != baseline}
    rows = sorted(
        (r for r in summary if (r["size"], r["ratio"]) in cells),
        key=lambda r: (sizes.index(r["size"]), r["ratio"], optimizers.index(r["optimizer"])),
    )
    header = [
        "size",
        "ratio",
        "tokens",
        "optimizer",
        "final loss",
        "speedup [min, max]",
        "tuned lr",
        "second",
    ]
    lines = []
    for r in rows:
        edge = lambda flag: "*" if flag else ""
        second = f"{r['second']} {r['second_value']}{edge(r['second_edge'])}" if r["second"] else "-"
        lines.append(
            [r["size"], f"{r['ratio']:g}x", f"{r['tokens']:,}", r["optimizer"],
             f"{r['loss_mean']:.4f} ± {(r['loss_max'] - r['loss_min']) / 2:.4f}",
             "baseline" if r["optimizer"] == baseline else r["speedup_text"] or "-",
             f"{r['lr']:.3g}{edge(r['lr_edge'])}", second]
        )  # fmt: skip
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    fmt = lambda row: "  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip()
    out, last = [fmt(header), fmt(["-" * w for w in widths])], None
    for r, line in zip(rows, lines):
        if last is not None and (r["size"], r["ratio"]) != last:
            out.append("")  # a blank line between (size, ratio) groups
        out.append(fmt(line))
        last = (r["size"], r["ratio"])
    return "\n".join(out)


def write_csv(path: str | Path, rows: list[dict]) -> Path:
    """Rows as CSV (the union of their keys as columns; dicts and lists written as JSON)."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in r.items()})
    return Path(path)


def cli(argv: Sequence[str] | None = None) -> dict:
    """``python -m minidiff.train.bench``: run a preset, save the tables and plots, print the tables, and end with
    one JSON line ``{optimizer: {"speedup": ..., "lr": ...}}``."""
    from minidiff.train.bench_recipes import known_optimizers
    from minidiff.train.bench_sweep import PRESETS, _check_optimizers, get_preset, sweep

    parser = argparse.ArgumentParser(
        prog="python -m minidiff.train.bench",
        description="Run an optimizer benchmark preset (every optimizer tuned on its own LR grid, compared at the "
        "end of training), save tables (CSV/JSON) and plots, print them, and end with one JSON line "
        '{optimizer: {"speedup": ..., "lr": ...}}. Runs are cached by config hash: rerunning resumes.',
        epilog="example: python -m minidiff.train.bench --preset tiny --optimizers adamw,muon,soap --workers 2 "
        f"--out runs/bench. Optimizers: {', '.join(known_optimizers())}.",
    )
    parser.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    parser.add_argument("--optimizers", default=None, help="comma-separated (default: the preset's)")
    parser.add_argument("--out", default="runs/bench", help="output folder (tables, plots)")
    parser.add_argument("--cache", default=None, help="run cache (default: OUT/cache)")
    parser.add_argument("--workers", type=int, default=1, help="runs trained in parallel processes")
    parser.add_argument("--method", default="interp", choices=("interp", "fit"))
    parser.add_argument("--spectral", action="store_true", help="also measure FFN spectral ranks (O23)")
    parser.add_argument("--no-plots", action="store_true", help="skip plots.html (plotly.js makes it ~5 MB)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be a positive int, got {args.workers}")
    try:  # bad input fails here, with the accepted values, before any training
        preset = get_preset(args.preset)
        if args.optimizers is not None:
            _check_optimizers(args.optimizers, "adamw")
    except ValueError as err:
        parser.error(f"--optimizers: {err}")

    out = Path(args.out)
    start = time.perf_counter()
    result = sweep(preset, args.optimizers, args.cache or out / "cache", workers=args.workers,
                   progress=not args.no_progress)  # fmt: skip
    result.meta = {"wall_time": time.perf_counter() - start, "trained": result.trained,
                   "cpu_time": sum(r["cpu_time"] for r in result.runs)}  # fmt: skip
    result.save(out)
    summary = result.summary(args.method)
    print(f"\npreset {preset.name}: {len(result.runs)} runs ({result.trained} trained now), "
          f"{result.meta['cpu_time'] / 60:.1f} CPU-min in all\n")  # fmt: skip
    print("final validation loss (nats/char), mean ± half-range over seeds\n" + text_table(summary, "loss"))
    print(
        f"\nspeedup over {result.baseline} ({args.method}): mean [min, max] over seeds, with the tuned "
        "hyperparameters (* on an edge of the grid)\n" + speedup_table(summary, result.baseline)
    )
    figures = result.headline(args.method)
    spectral = None
    if args.spectral:
        from minidiff.train.bench_spectral import spectral_scaling

        lrs = {name: f["lr"] for name, f in figures.items()}  # tuned at the largest size
        spectral = spectral_scaling(preset, cache_dir=args.cache or out / "cache", lrs=lrs, workers=args.workers,
                                    progress=not args.no_progress)  # fmt: skip
        spectral.save(out)
        print(
            "\nspectral scaling exponents β (rank ∝ d_ff^β), pooled [per-seed min, max]\n" + spectral.text()
        )
        for name, beta in spectral.tail_hard_betas().items():
            if name in figures:
                figures[name]["tail_hard_beta"] = round(beta, 3)
    if not args.no_plots:
        try:
            from minidiff.train.bench_plots import write_html

            write_html(result, out / "plots.html", spectral)
        except ModuleNotFoundError as err:  # plotly is optional for the core library
            print(f"no plots.html ({err})")
    print(json.dumps(figures, sort_keys=True))
    return figures
