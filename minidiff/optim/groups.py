"""Split a model's parameters by role and pair a matrix optimizer with an AdamW partner.

Matrix optimizers (Muon, NorMuon, PolarGrad, Conda, Shampoo, Dion, SinkGD, SWAN) are meant for the *hidden* 2-D
weights: attention and MLP projections. Their papers give everything else -- token embeddings, the LM head, norm
gains, biases, the time-embedding MLP, MoE routers -- to AdamW (KellerJordan/Muon: lr 3e-4, betas (0.9, 0.95),
eps 1e-10). Embeddings and heads are 2-D too, so shape alone cannot decide: we classify by module type and by name.

Roles (:data:`ROLES`), decided in this order for ``minidiff.nn.Transformer`` and Llama/GPT-style names:

==============  =================================================================  ==========
role            how it is recognised                                                default
==============  =================================================================  ==========
``norm``        a LayerNorm/RMSNorm/GroupNorm/BatchNorm module, or "norm"/"ln_" in  AdamW
                the module name (``attn_norm``, ``mlp_norm``, ``norm``)
``bias``        the parameter is called ``bias``                                    AdamW
``time_embed``  inside ``time_embed`` / ``time_mlp`` / ``t_embedder`` (the          AdamW
                conditioning MLP reads sinusoidal features, an input layer)
``embedding``   an ``nn.Embedding``, or "embed"/"wte"/"wpe" in the module name      AdamW
``lm_head``     module named ``lm_head``/``head``/``output``/``unembed``/...; a     AdamW
                tied head is the embedding (one tensor, counted once)
``router``      a 2-D weight of a module named ``router`` or ``gate`` (MoE)         AdamW
``other``       not 2-D (convolution kernels, scalars, stray gains)                 AdamW
``attention``   ``qkv``, ``attn_out``, ``q_proj``, ``o_proj``, ``c_attn``, ...      matrix
``mlp_gate_up`` ``gate_up`` (minidiff fuses SwiGLU's gate and up: [2·d_ff, d]),      matrix
                ``gate_proj``, ``up_proj``, ``fc1``, ``w1``, ``w3``
``mlp_down``    ``down``, ``down_proj``, ``fc2``, ``w2``                            matrix
``modulation``  adaLN ``modulation`` (time conditioning of the norms)               matrix
``hidden``      any other 2-D weight                                                matrix
==============  =================================================================  ==========

Use :func:`hybrid` for a one-line optimizer, e.g. with ``minidiff.train.fit``::

    fit(model, loss, data, steps=..., batch_size=...,
        optimizer=lambda params: hybrid("muon", model, matrix_lr=0.02, adam_lr=3e-3))

(``fit`` passes ``model.parameters()``; the lambda ignores it because routing needs the names.) SOAP and the
Adam family work on every parameter directly: ``create("soap", model.parameters())``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from minidiff.optim._compose import ComposedOptimizer

__all__ = [
    "ROLES",
    "MATRIX_ROLES",
    "classify_parameters",
    "named_parameters_by_role",
    "matrix_param_groups",
    "MatrixWithAdam",
    "hybrid",
]

ROLES = (
    "norm",
    "bias",
    "time_embed",
    "embedding",
    "lm_head",
    "router",
    "other",
    "attention",
    "mlp_gate_up",
    "mlp_down",
    "modulation",
    "hidden",
)
MATRIX_ROLES = ("attention", "mlp_gate_up", "mlp_down", "modulation", "hidden")

_NORM_TYPES = (nn.LayerNorm, nn.RMSNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase)
_TIME = re.compile(r"^(time|t|timestep)_?(embed|embedding|embedder|mlp|proj)s?$")
_EMBED = re.compile(r"(embed|^wte$|^wpe$|^tok_emb|^pos_emb)")
_HEAD = {"lm_head", "head", "output", "unembed", "output_projection", "classifier"}
_ROUTER = {"router", "gate"}
_ATTENTION = re.compile(r"(attn|attention|^qkv$|^[qkvo]_proj$|^out_proj$|^w[qkvo]$|^query$|^key$|^value$)")
_GATE_UP = re.compile(r"(gate_up|^gate_proj$|^up_proj$|^up$|^fc1$|^c_fc$|^w[13]$)")
_DOWN = re.compile(r"(^down$|^down_proj$|^fc2$|^w2$)")

NamedParams = Iterable[tuple[str, torch.Tensor]]


def _role(name: str, p: torch.Tensor, module: nn.Module | None) -> str:
    parts = name.lower().split(".")
    path, leaf = parts[:-1], parts[-1]
    owner = path[-1] if path else ""
    if isinstance(module, _NORM_TYPES) or "norm" in owner or owner.startswith("ln"):
        return "norm"
    if leaf == "bias" or leaf.endswith("_bias"):
        return "bias"
    if any(_TIME.match(part) for part in path):
        return "time_embed"
    if isinstance(module, nn.Embedding) or _EMBED.search(owner):
        return "embedding"
    if owner in _HEAD:
        return "lm_head"
    if p.ndim != 2:
        return "other"
    if owner in _ROUTER:
        return "router"
    if any(_ATTENTION.search(part) for part in path):
        return "attention"
    if _GATE_UP.search(owner):
        return "mlp_gate_up"
    if _DOWN.search(owner):
        return "mlp_down"
    if "modulation" in owner or "adaln" in owner:
        return "modulation"
    return "hidden"


def _named(model: nn.Module | NamedParams) -> list[tuple[str, torch.Tensor, nn.Module | None]]:
    if isinstance(model, nn.Module):
        modules = dict(model.named_modules())
        return [(n, p, modules.get(n.rpartition(".")[0])) for n, p in model.named_parameters()]
    named = list(model)
    if not all(
        isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], torch.Tensor) for item in named
    ):
        raise TypeError(
            "model must be an nn.Module or an iterable of (name, tensor) pairs like model.named_parameters()"
        )
    seen: set[int] = set()
    out = []
    for n, p in named:
        if id(p) not in seen:
            seen.add(id(p))
            out.append((n, p, None))
    return out


def classify_parameters(model: nn.Module | NamedParams, *, trainable_only: bool = True) -> dict[str, str]:
    """``{parameter name: role}`` in model order; a tied tensor appears once (under its first name)."""
    return {n: _role(n, p, m) for n, p, m in _named(model) if p.requires_grad or not trainable_only}


def named_parameters_by_role(
    model: nn.Module | NamedParams, *, trainable_only: bool = True
) -> dict[str, list[tuple[str, torch.Tensor]]]:
    """``{role: [(name, parameter), ...]}`` for the roles present, in :data:`ROLES` order."""
    out: dict[str, list[tuple[str, torch.Tensor]]] = {}
    for n, p, m in _named(model):
        if p.requires_grad or not trainable_only:
            out.setdefault(_role(n, p, m), []).append((n, p))
    return {role: out[role] for role in ROLES if role in out}


def _check_roles(name: str, roles: Iterable[str]) -> tuple[str, ...]:
    roles = tuple(roles)
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise ValueError(f"{name} must contain roles from {ROLES}, got unknown {unknown}")
    return roles


def matrix_param_groups(
    model: nn.Module | NamedParams,
    *,
    matrix_roles: Sequence[str] = MATRIX_ROLES,
    role_hparams: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One param group per role present: matrix roles first (``use_matrix=True``), then the AdamW roles.

    Each group holds ``params``, ``param_names``, ``role``, ``use_matrix`` and the per-role overrides of
    ``role_hparams`` (e.g. ``{"embedding": {"lr": 1e-2}}``). Every trainable parameter lands in exactly one group.
    """
    matrix_roles = _check_roles("matrix_roles", matrix_roles)
    role_hparams = role_hparams or {}
    _check_roles("role_hparams", role_hparams)
    by_role = named_parameters_by_role(model)
    for role in matrix_roles:
        for name, p in by_role.get(role, []):
            if p.ndim != 2:
                raise ValueError(
                    f"role {role!r} cannot go to a matrix optimizer: {name} has shape {tuple(p.shape)}"
                )
    ordered = [r for r in by_role if r in matrix_roles] + [r for r in by_role if r not in matrix_roles]
    return [
        {
            "params": [p for _, p in by_role[role]],
            "param_names": [n for n, _ in by_role[role]],
            "role": role,
            "use_matrix": role in matrix_roles,
            **role_hparams.get(role, {}),
        }
        for role in ordered
    ]


OptimizerSpec = str | Callable[..., torch.optim.Optimizer]


def _build(spec: OptimizerSpec, groups: list[dict], kwargs: dict[str, Any]) -> torch.optim.Optimizer:
    if isinstance(spec, str):
        from minidiff.optim.registry import create

        return create(spec, groups, **kwargs)
    if callable(spec):
        return spec(groups, **kwargs)
    raise TypeError(
        f"an optimizer must be a registry name or a callable (params, **kw) -> Optimizer, got {spec!r}"
    )


class MatrixWithAdam(ComposedOptimizer):
    """A matrix optimizer on the ``use_matrix`` groups and AdamW (or ``adam``) on the rest, with one ``step()``.

    Children are ``self.children["matrix"]`` and ``self.children["adam"]`` (either may be absent when no group
    needs it). ``param_groups`` are the children's groups, so LR schedulers and ``fit`` work unchanged; a group's
    ``role`` tells which part of the model it holds.
    """

    def __init__(
        self,
        param_groups: list[dict[str, Any]],
        matrix: OptimizerSpec = "muon",
        *,
        adam: OptimizerSpec = "adamw",
        matrix_kwargs: dict[str, Any] | None = None,
        adam_kwargs: dict[str, Any] | None = None,
    ) -> None:
        groups = list(param_groups)
        if not groups or not all(isinstance(g, dict) and "params" in g for g in groups):
            raise ValueError(
                "param_groups must be a non-empty list of dicts with 'params' (see matrix_param_groups)"
            )
        matrix_groups = [dict(g) for g in groups if g.get("use_matrix", False)]
        adam_groups = [dict(g) for g in groups if not g.get("use_matrix", False)]
        children = {}
        if matrix_groups:
            children["matrix"] = _build(matrix, matrix_groups, matrix_kwargs or {})
        if adam_groups:
            children["adam"] = _build(adam, adam_groups, adam_kwargs or {})
        super().__init__(children)


def hybrid(
    matrix: OptimizerSpec,
    model: nn.Module | NamedParams,
    *,
    matrix_lr: float | None = None,
    adam_lr: float = 3e-4,
    adam_betas: tuple[float, float] = (0.9, 0.95),
    adam_eps: float = 1e-10,
    adam_weight_decay: float = 0.0,
    adam: OptimizerSpec = "adamw",
    matrix_roles: Sequence[str] = MATRIX_ROLES,
    role_hparams: dict[str, dict[str, Any]] | None = None,
    **matrix_kwargs: Any,
) -> MatrixWithAdam:
    """``matrix`` (a registry name such as ``"muon"``) on the hidden matrices of ``model``, AdamW on the rest.

    ``matrix_lr`` (default: the matrix optimizer's own default) and ``**matrix_kwargs`` go to the matrix optimizer;
    the ``adam_*`` arguments (KellerJordan/Muon's partner defaults) to AdamW.
    """
    if matrix_lr is not None:
        if "lr" in matrix_kwargs:
            raise ValueError("pass the matrix learning rate once: matrix_lr or lr, not both")
        matrix_kwargs["lr"] = matrix_lr
    adam_kwargs = {"lr": adam_lr, "betas": adam_betas, "eps": adam_eps, "weight_decay": adam_weight_decay}
    groups = matrix_param_groups(model, matrix_roles=matrix_roles, role_hparams=role_hparams)
    return MatrixWithAdam(groups, matrix, adam=adam, matrix_kwargs=matrix_kwargs, adam_kwargs=adam_kwargs)
