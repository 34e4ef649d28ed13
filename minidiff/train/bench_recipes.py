"""Optimizer recipes of the benchmark: how each optimizer is built over a model and where its sweep starts.

Every recipe names the centre of its LR grid, its other hyperparameters at their centre and the **one** other
hyperparameter the sweep tunes -- the most sensitive one per the benchmark papers (Semenov, Pagliardini & Jaggi,
arXiv 2509.01440; Wen, Hall, Ma & Liang, arXiv 2509.02046). Weight decay goes to matrices (embeddings and head
included, as Semenov et al.), never to norm gains. Matrix optimizers (Muon) get an AdamW partner for the
embedding, the head and the gains through :func:`minidiff.optim.groups.hybrid`. Any other optimizer of the
registry gets a generic recipe: its own default LR as the grid's centre, no second hyperparameter.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["Recipe", "RECIPES", "recipe", "known_optimizers", "build_optimizer"]


def _decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices (embeddings and head included, as Semenov et al.), none on norm gains."""
    matrices = [p for p in model.parameters() if p.ndim >= 2]
    vectors = [p for p in model.parameters() if p.ndim < 2]
    return [{"params": matrices, "weight_decay": weight_decay}, {"params": vectors, "weight_decay": 0.0}]


def _create(name: str, model: nn.Module, lr: float, hp: dict, **fixed: Any) -> torch.optim.Optimizer:
    from minidiff.optim import create

    return create(name, _decay_groups(model, hp.pop("weight_decay", 0.0)), lr=lr, **fixed, **hp)


def _adamw(model, lr, hp, steps):
    return _create("adamw", model, lr, hp, betas=(hp.pop("beta1"), hp.pop("beta2")))


def _ademamix(model, lr, hp, steps):
    betas = (hp.pop("beta1"), hp.pop("beta2"), hp.pop("beta3"))
    return _create("ademamix", model, lr, hp, betas=betas, alpha_warmup=steps, beta3_warmup=steps)


def _soap(model, lr, hp, steps):
    return _create("soap", model, lr, hp, betas=(hp.pop("beta1"), hp.pop("beta2")))


def _lion(model, lr, hp, steps):
    return _create("lion", model, lr, hp, betas=(hp.pop("beta1"), hp.pop("beta2")))


def _muon(model, lr, hp, steps):
    from minidiff.optim.groups import hybrid

    adam_lr = lr * hp.pop("adam_ratio")
    wd = hp.pop("weight_decay")
    return hybrid("muon", model, matrix_lr=lr, adam_lr=adam_lr, weight_decay=wd, adam_weight_decay=wd, **hp)


@dataclass(frozen=True)
class Recipe:
    """How the benchmark builds an optimizer and where its sweep starts.

    ``lr`` is the centre of the LR grid, ``defaults`` the other hyperparameters at their centre, ``second`` the
    one other hyperparameter swept (the most sensitive per the papers) over ``second_grid``.

    The LR centres come from a pilot on the ``tiny`` preset's d24 model (a x2 grid at 1/4x and 1x Chinchilla):
    toy character models want 3-10x the LRs the papers use at 124M (AdamW 1e-3, Muon 0.02, Lion 1e-3 in
    Semenov et al.); the sweep's edge rule moves the grid where a centre is off.
    """

    name: str
    lr: float
    defaults: dict
    second: str | None
    second_grid: tuple
    build: Callable[[nn.Module, float, dict, int], torch.optim.Optimizer]
    source: str = ""


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in [
        Recipe(
            "adamw", 1e-2, {"beta1": 0.9, "beta2": 0.98, "weight_decay": 0.1}, "weight_decay", (0.0, 0.1, 0.5),
            _adamw, "Wen: β (0.9, 0.98), WD 0.1, sensitive: lr, WD; Semenov: WD 0.5 wins short runs",
        ),
        Recipe(
            "ademamix", 6e-3, {"beta1": 0.9, "beta2": 0.999, "beta3": 0.999, "alpha": 8.0, "weight_decay": 0.1},
            "beta3", (0.99, 0.999, 0.9999), _ademamix,
            "Semenov: α 8, β3 0.999 (0.9999 for long runs), α and β3 warm-ups = T",
        ),
        Recipe(
            "muon", 0.04, {"momentum": 0.95, "adam_ratio": 0.25, "weight_decay": 0.0}, "momentum",
            (0.9, 0.95, 0.98), _muon,
            "KellerJordan lr 0.02, Nesterov 0.95; Wen: AdamW partner at 0.2–0.3 x Muon's LR, only lr sensitive",
        ),
        Recipe(
            "d-muon", 1e-2, {"momentum": 0.95, "adam_ratio": 1.0, "weight_decay": 0.1, "scale": "moonlight"},
            "weight_decay", (0.0, 0.1, 0.5), _muon,
            "Semenov's D-Muon (Moonlight scaling 0.2·√max(m, n)): one LR and WD for Muon and AdamW",
        ),
        Recipe(
            "soap", 1.2e-2, {"beta1": 0.95, "beta2": 0.99, "precondition_frequency": 10, "weight_decay": 0.1},
            "beta2", (0.95, 0.99, 0.999), _soap, "Wen: β (0.95, 0.99), frequency 10; sensitive: lr, β2",
        ),
        Recipe(
            "lion", 3e-3, {"beta1": 0.9, "beta2": 0.99, "weight_decay": 0.5}, "weight_decay", (0.1, 0.5, 1.0),
            _lion, "Lion paper: LR 3–10x below AdamW's, WD 3–10x above; Wen: WD 0.7",
        ),
    ]
}  # fmt: skip


def known_optimizers() -> list[str]:
    """Names the benchmark accepts: its recipes and every optimizer of :func:`minidiff.optim.available`."""
    from minidiff.optim import available

    return sorted(set(RECIPES) | set(available()))


def _generic_build(name: str) -> Callable[[nn.Module, float, dict, int], torch.optim.Optimizer]:
    def build(model, lr, hp, steps):
        from minidiff.optim import get
        from minidiff.optim.groups import hybrid

        if getattr(get(name), "param_kind", "any") == "matrix":
            return hybrid(name, model, matrix_lr=lr, adam_lr=RECIPES["adamw"].lr, **hp)
        return _create(name, model, lr, hp)

    return build


def recipe(name: str) -> Recipe:
    """The benchmark's recipe for ``name``; other registry optimizers get one with their own default LR as the
    grid's centre and no second hyperparameter. Unknown names raise ``ValueError`` listing the accepted ones."""
    if name in RECIPES:
        return RECIPES[name]
    names = known_optimizers()
    if name not in names:
        raise ValueError(f"unknown optimizer {name!r}; the benchmark accepts: {', '.join(names)}")
    from minidiff.optim import get

    default_lr = inspect.signature(get(name)).parameters["lr"].default
    return Recipe(name, float(default_lr), {}, None, (), _generic_build(name), "registry defaults")


def build_optimizer(
    name: str, model: nn.Module, lr: float, hparams: dict, steps: int
) -> torch.optim.Optimizer:
    """The optimizer of recipe ``name`` over ``model``; hyperparameters missing from ``hparams`` take the recipe's
    centre values (``steps`` feeds AdEMAMix's warm-ups)."""
    r = recipe(name)
    return r.build(model, lr, {**r.defaults, **hparams}, steps)
