r"""The benchmark protocol: presets, the per-optimizer sweep, the result table, the command line.

For every model size and every optimizer (Semenov et al., arXiv 2509.01440; Wen et al., arXiv 2509.02046):

1. **LR** on a x2 grid around the recipe's centre (:data:`minidiff.train.bench.RECIPES`) at the smallest budget,
   seed 0, the other hyperparameters at their centre. While the best LR sits on an edge of the grid, the grid
   grows one step that way (at most ``max_extend`` times): a sweep whose optimum is on its edge is not a tuned
   one.
2. **The second hyperparameter** (the most sensitive one per the papers: AdamW's weight decay, AdEMAMix's β3,
   Muon's momentum, SOAP's β2, Lion's weight decay) over its grid at the best LR; the best value is kept for
   every budget (Semenov et al. keep all hyperparameters across durations).
3. **LR again at every other budget** (Wen et al. find the LR scaling-sensitive for every optimizer), on the grid
   centred on step 1's LR, with the same edge rule (``retune_lr``; off: step 1's LR is used everywhere).
4. **Seeds**: the tuned config of every (size, budget) rerun with the other seeds.

Budgets are multiples of D_1x = 20 · N_nonembedding (:meth:`ModelSize.chinchilla_tokens`). AdamW also runs at
``baseline_ratios`` below and above the others' budgets, so that the speedups of faster and slower optimizers can
be read off AdamW's curve without extrapolating. Each budget is its own run with its own full schedule, never a
checkpoint of a longer run, and only the final validation loss is compared.

Every run is cached by its config hash, so an interrupted sweep continues where it stopped; ``workers > 1``
trains runs in parallel processes (one thread each).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minidiff.train.bench import RunConfig, has_model, load_result, recipe, run_one
from minidiff.train.bench_presets import PRESETS, Preset, get_preset

__all__ = ["Preset", "PRESETS", "get_preset", "sweep", "BenchResult", "main"]  # presets re-exported


# ------------------------------------------------------------------------------------------- running
class _Runner:
    """Runs configs (cached ones are read), in worker processes when ``workers > 1``; remembers every result."""

    def __init__(
        self, cache_dir: str | os.PathLike, workers: int, progress: bool, save_model: bool = False
    ) -> None:
        self.cache_dir, self.workers, self.progress = str(cache_dir), workers, progress
        self.save_model = save_model
        self.results: dict[str, dict] = {}
        self.configs: dict[str, tuple[RunConfig, str]] = {}  # key -> (config, first phase asking for it)
        self.trained = 0
        self._pool: ProcessPoolExecutor | None = None

    def run(self, configs: Iterable[RunConfig], phase: str) -> None:
        todo = []
        for config in configs:
            self.configs.setdefault(config.key, (config, phase))
            if config.key not in self.results:
                cached = load_result(config, self.cache_dir)
                if cached is not None and self.save_model and not cached["diverged"]:
                    cached = cached if has_model(config, self.cache_dir) else None
                if cached is not None:
                    self.results[config.key] = cached
                elif all(c.key != config.key for c in todo):
                    todo.append(config)
        if not todo:
            return
        from tqdm.auto import tqdm

        todo.sort(key=lambda c: -c.tokens * c.size.n_total(100))  # longest first: the pool stays busy
        bar = tqdm(total=len(todo), desc=f"bench {phase}", disable=not self.progress, dynamic_ncols=True)
        try:
            if self.workers > 1 and len(todo) > 1:
                if self._pool is None:
                    import multiprocessing

                    ctx = multiprocessing.get_context("spawn")
                    self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx)
                futures = {
                    self._pool.submit(run_one, c, self.cache_dir, save_model=self.save_model): c for c in todo
                }
                for future in as_completed(futures):
                    self._done(futures[future], future.result(), bar)
            else:
                for config in todo:
                    self._done(config, run_one(config, self.cache_dir, save_model=self.save_model), bar)
        finally:
            bar.close()

    def _done(self, config: RunConfig, result: dict, bar) -> None:
        self.results[config.key] = result
        self.trained += 1
        bar.set_postfix_str(f"{config.optimizer} {config.size.name} {config.tokens:,} tok", refresh=False)
        bar.update(1)

    def loss(self, config: RunConfig) -> float:
        value = self.results[config.key]["val_loss"]
        return float("inf") if value is None or value != value else value  # NaN (diverged) ranks last

    def close(self) -> None:
        """Shut the worker processes down; while an exception (Ctrl-C, SIGTERM) is propagating, kill them at
        once: their runs are checkpointed, so the next sweep resumes them."""
        if self._pool is not None:
            aborting = sys.exc_info()[0] is not None
            if aborting:
                for process in list(getattr(self._pool, "_processes", {}).values()):
                    process.terminate()
            self._pool.shutdown(wait=not aborting, cancel_futures=aborting)
            self._pool = None


class _LRSearch:
    """A x-grid of LRs that grows by one step past an edge while the best LR sits on that edge."""

    def __init__(self, centre: float, factors: Sequence[float], max_extend: int) -> None:
        self.lrs = sorted({float(f"{centre * f:.6g}") for f in factors})
        self.losses: dict[float, float] = {}
        self.extensions_left = max_extend

    def pending(self) -> list[float]:
        return [lr for lr in self.lrs if lr not in self.losses]

    @property
    def best(self) -> float:
        return min(self.lrs, key=lambda lr: self.losses[lr])

    def extend(self) -> bool:
        """Add one LR past the edge holding the best loss; False when the search is finished."""
        if len(self.lrs) < 2 or self.extensions_left == 0 or self.best not in (self.lrs[0], self.lrs[-1]):
            return False
        self.extensions_left -= 1
        if self.best == self.lrs[0]:
            self.lrs.insert(0, float(f"{self.lrs[0] ** 2 / self.lrs[1]:.6g}"))
        else:
            self.lrs.append(float(f"{self.lrs[-1] ** 2 / self.lrs[-2]:.6g}"))
        return True


def _search(runner: _Runner, searches: dict, make, phase: str) -> None:
    """Run every LR search to its end, all searches' pending runs at once in each round."""
    active = dict(searches)
    while active:
        configs = {(task, lr): make(task, lr) for task, s in active.items() for lr in s.pending()}
        runner.run(configs.values(), phase)
        for (task, lr), config in configs.items():
            active[task].losses[lr] = runner.loss(config)
        active = {task: s for task, s in active.items() if s.extend()}


def _check_optimizers(optimizers: Sequence[str], baseline: str) -> list[str]:
    if isinstance(optimizers, str):
        optimizers = [o for o in optimizers.split(",") if o]
    optimizers = list(dict.fromkeys(optimizers))
    if not optimizers:
        raise ValueError("optimizers must name at least one optimizer, got an empty list")
    for name in optimizers:
        recipe(name)  # unknown names raise, listing the accepted ones
    if baseline not in optimizers:
        raise ValueError(
            f"the baseline {baseline!r} must be among the optimizers {optimizers} (speedups need it)"
        )
    return optimizers


def sweep(
    preset: str | Preset = "tiny",
    optimizers: Sequence[str] | str | None = None,
    cache_dir: str | os.PathLike = "runs/bench",
    *,
    baseline: str = "adamw",
    workers: int = 1,
    progress: bool = True,
) -> BenchResult:
    """Run the protocol of the module docstring and return every run as a :class:`BenchResult`.

    ``optimizers`` (default: the preset's) must include ``baseline``. Runs already in ``cache_dir`` are read,
    not retrained, so an interrupted sweep continues; ``workers`` processes train in parallel.
    """
    preset = get_preset(preset)
    optimizers = _check_optimizers(optimizers if optimizers is not None else preset.optimizers, baseline)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    runner = _Runner(cache_dir, workers, progress)
    r0, seed0 = min(preset.ratios), preset.seeds[0]
    tasks = [(size, opt) for size in preset.sizes for opt in optimizers]
    hp = {(size, opt): dict(recipe(opt).defaults) for size, opt in tasks}
    try:
        # 1. LR at the smallest common budget
        first = {t: _LRSearch(recipe(t[1]).lr, preset.lr_factors, preset.max_extend) for t in tasks}
        _search(runner, first, lambda t, lr: preset.config(t[1], t[0], r0, lr, hp[t], seed0), "lr")
        lr0 = {t: s.best for t, s in first.items()}
        # 2. the second hyperparameter at that LR
        if preset.tune_second:
            second = {
                (t, v): preset.config(t[1], t[0], r0, lr0[t], {**hp[t], recipe(t[1]).second: v}, seed0)
                for t in tasks
                for v in recipe(t[1]).second_grid
            }
            runner.run(second.values(), "second")
            for t in tasks:
                name = recipe(t[1]).second
                if name is not None:
                    hp[t][name] = min(recipe(t[1]).second_grid, key=lambda v: runner.loss(second[(t, v)]))
        # 3. LR at every budget
        factors = preset.lr_factors if preset.retune_lr else (1.0,)
        extend = preset.max_extend if preset.retune_lr else 0
        cells = [(size, opt, r) for size, opt in tasks for r in preset.ratios_for(opt, baseline)]
        third = {c: _LRSearch(lr0[c[:2]], factors, extend) for c in cells}
        _search(runner, third, lambda c, lr: preset.config(c[1], c[0], c[2], lr, hp[c[:2]], seed0), "budgets")
        tuned = {c: third[c].best for c in cells}
        # 4. seeds
        finals = {
            (c, seed): preset.config(c[1], c[0], c[2], tuned[c], hp[c[:2]], seed)
            for c in cells
            for seed in preset.seeds
        }
        runner.run(finals.values(), "seeds")
    finally:
        runner.close()
    final_keys = {config.key for config in finals.values()}
    runs = [
        _row(config, phase, runner.results[key], key in final_keys)
        for key, (config, phase) in runner.configs.items()
    ]
    sizes = [s.name for s in preset.sizes]
    runs.sort(
        key=lambda r: (
            optimizers.index(r["optimizer"]),
            sizes.index(r["size"]),
            r["ratio"],
            r["seed"],
            r["lr"],
        )
    )
    _mark_edges(runs)
    return BenchResult(dataclasses.asdict(preset), optimizers, baseline, runs, trained=runner.trained)


def _mark_edges(runs: list[dict]) -> None:
    """Mark on every final row whether its tuned values sit on an edge of what was tried: ``lr_edge`` ("low",
    "high" or "") over the seed-0 LR grid of its cell, ``second_edge`` over the recipe's second grid."""
    seed0 = min(r["seed"] for r in runs)
    grids: dict[tuple, list[float]] = {}
    for g in runs:
        if g["seed"] == seed0:
            key = (g["optimizer"], g["size"], g["ratio"], json.dumps(g["hparams"], sort_keys=True))
            grids.setdefault(key, []).append(g["lr"])
    for r in runs:
        if not r["final"]:
            continue
        grid = grids.get(
            (r["optimizer"], r["size"], r["ratio"], json.dumps(r["hparams"], sort_keys=True)), []
        )
        low, high = len(grid) > 1 and r["lr"] <= min(grid), len(grid) > 1 and r["lr"] >= max(grid)
        r["lr_edge"] = "low" if low else "high" if high else ""
        values = recipe(r["optimizer"]).second_grid
        r["second_edge"] = bool(values) and r["second_value"] in (values[0], values[-1])


def _row(config: RunConfig, phase: str, result: dict, final: bool) -> dict[str, Any]:
    rec = recipe(config.optimizer)
    size = config.size
    return {
        "optimizer": config.optimizer,
        "size": size.name,
        "d_model": size.d_model,
        "n_layers": size.n_layers,
        "d_ff": size.ffn_width,
        "n_params": result["n_params"],
        "n_nonembedding": result["n_nonembedding"],
        "ratio": round(config.tokens / size.chinchilla_tokens(1.0), 6),
        "tokens": result["tokens"],
        "steps": result["steps"],
        "seed": config.seed,
        "lr": config.lr,
        "second": rec.second or "",
        "second_value": config.hp().get(rec.second, "") if rec.second else "",
        "hparams": config.hp(),
        "phase": phase,
        "final": final,
        "val_loss": result["val_loss"],
        "diverged": result["diverged"],
        "cpu_time": round(result["cpu_time"], 2),
        "key": config.key,
        "curve": result["curve"],
        "history": result["history"],
        "config": config.to_dict(),
    }


# ------------------------------------------------------------------------------------------- results
def _rounded(obj: Any, digits: int = 6) -> Any:
    """Floats of a curve or history to ``digits`` significant digits (the JSON shrinks by half)."""
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}")
    if isinstance(obj, list):
        return [_rounded(x, digits) for x in obj]
    if isinstance(obj, dict):
        return {k: _rounded(v, digits) for k, v in obj.items()}
    return obj


_CSV_SKIP = ("curve", "history", "config")


@dataclass
class BenchResult:
    """Every run of a sweep as tidy rows (``runs``), and the tables derived from them.

    ``final`` marks the tuned runs of every (size, budget, seed), the only ones compared.
    """

    preset: dict
    optimizers: list[str]
    baseline: str
    runs: list[dict]
    trained: int = 0
    meta: dict = field(default_factory=dict)

    def finals(self) -> list[dict]:
        return [r for r in self.runs if r["final"]]

    def speedups(self, method: str = "interp") -> list[dict]:
        from minidiff.train.bench_report import speedup_rows

        return speedup_rows(self.finals(), baseline=self.baseline, method=method)

    def summary(self, method: str = "interp") -> list[dict]:
        from minidiff.train.bench_report import summarize

        return summarize(self.finals(), self.speedups(method))

    def headline(self, method: str = "interp") -> dict:
        from minidiff.train.bench_report import headline

        return headline(self.finals(), self.speedups(method), self.baseline)

    def to_json(self, path: str | os.PathLike, histories: str = "final") -> None:
        """Everything as JSON; ``histories`` (``"all"``, ``"final"`` or ``"none"``) says which runs keep their
        compact training history (validation curves are always kept)."""
        if histories not in ("all", "final", "none"):
            raise ValueError(f"histories must be 'all', 'final' or 'none', got {histories!r}")
        keep = lambda r: histories == "all" or (histories == "final" and r["final"])
        runs = [
            {**r, "curve": _rounded(r["curve"]), "history": _rounded(r["history"]) if keep(r) else None}
            for r in self.runs
        ]
        data = {"preset": self.preset, "optimizers": self.optimizers, "baseline": self.baseline}
        data |= {"runs": runs, "meta": self.meta}
        Path(path).write_text(json.dumps(data, sort_keys=True, separators=(",", ":")))

    @classmethod
    def load(cls, path: str | os.PathLike) -> BenchResult:
        data = json.loads(Path(path).read_text())
        return cls(
            data["preset"], data["optimizers"], data["baseline"], data["runs"], meta=data.get("meta", {})
        )

    def save(self, out_dir: str | os.PathLike, histories: str = "final") -> list[Path]:
        """Write ``results.json`` (every run with its validation curve; training histories per ``histories``) and
        the tidy tables ``runs.csv``, ``summary.csv``, ``speedups.csv`` under ``out_dir``; returns the paths."""
        from minidiff.train.bench_report import write_csv

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.to_json(out / "results.json", histories)
        runs = [{k: v for k, v in r.items() if k not in _CSV_SKIP} for r in self.runs]
        paths = [out / "results.json"]
        for name, rows in (("runs", runs), ("summary", self.summary()), ("speedups", self.speedups())):
            paths.append(write_csv(out / f"{name}.csv", rows))
        return paths


def main(argv: Sequence[str] | None = None) -> dict:
    from minidiff.train.bench_report import cli

    return cli(argv)
