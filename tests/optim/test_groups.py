"""Specifications of minidiff.optim.groups: parameter roles and the matrix + AdamW hybrid optimizer."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from minidiff.nn.transformer import Transformer
from minidiff.optim.groups import (
    MATRIX_ROLES,
    MatrixWithAdam,
    classify_parameters,
    hybrid,
    matrix_param_groups,
)


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_transformer(**kw) -> Transformer:
    torch.manual_seed(0)
    return Transformer(vocab_size=16, d_model=16, n_layers=2, n_heads=2, max_len=8, **kw)


def lm_loss(model: nn.Module, x: torch.Tensor, **kw) -> torch.Tensor:
    return F.cross_entropy(model(x[:, :-1], **kw).flatten(0, 1), x[:, 1:].flatten())


@pytest.mark.parametrize("kw", [{}, {"tie_weights": True}, {"time_conditioning": True}])
def test_every_transformer_parameter_lands_in_exactly_one_group(kw):
    model = tiny_transformer(**kw)
    groups = matrix_param_groups(model)
    grouped = [p for g in groups for p in g["params"]]
    assert len(grouped) == len({id(p) for p in grouped}) == len(list(model.parameters()))
    assert all(len(g["params"]) == len(g["param_names"]) for g in groups)


def test_transformer_roles_send_embeddings_head_norms_and_biases_to_adamw():
    roles = classify_parameters(tiny_transformer(time_conditioning=True))
    assert roles["embed.weight"] == "embedding" and roles["lm_head.weight"] == "lm_head"
    assert (
        roles["norm.weight"]
        == roles["blocks.0.attn_norm.weight"]
        == roles["blocks.1.mlp_norm.weight"]
        == "norm"
    )
    assert roles["blocks.0.modulation.bias"] == "bias"
    assert roles["time_embed.mlp.0.weight"] == roles["time_embed.mlp.2.weight"] == "time_embed"
    assert roles["blocks.0.qkv.weight"] == roles["blocks.0.attn_out.weight"] == "attention"
    assert roles["blocks.0.gate_up.weight"] == "mlp_gate_up" and roles["blocks.0.down.weight"] == "mlp_down"
    assert roles["blocks.0.modulation.weight"] == "modulation"
    matrix = {n for n, r in roles.items() if r in MATRIX_ROLES}
    assert all(n.startswith("blocks.") and n.endswith(".weight") and "norm" not in n for n in matrix)


def test_a_tied_head_is_the_embedding_counted_once():
    roles = classify_parameters(tiny_transformer(tie_weights=True))
    assert "lm_head.weight" not in roles and roles["embed.weight"] == "embedding"


def test_classification_works_from_names_alone_and_knows_llama_and_moe_names():
    named = [
        ("model.embed_tokens.weight", torch.zeros(10, 4, requires_grad=True)),
        ("model.layers.0.self_attn.q_proj.weight", torch.zeros(4, 4, requires_grad=True)),
        ("model.layers.0.mlp.gate_proj.weight", torch.zeros(8, 4, requires_grad=True)),
        ("model.layers.0.mlp.down_proj.weight", torch.zeros(4, 8, requires_grad=True)),
        ("model.layers.0.mlp.router.weight", torch.zeros(3, 4, requires_grad=True)),
        ("model.layers.0.input_layernorm.weight", torch.zeros(4, requires_grad=True)),
        ("lm_head.weight", torch.zeros(10, 4, requires_grad=True)),
        ("conv.weight", torch.zeros(2, 3, 3, 3, requires_grad=True)),
    ]
    assert list(classify_parameters(named).values()) == [
        "embedding",
        "attention",
        "mlp_gate_up",
        "mlp_down",
        "router",
        "norm",
        "lm_head",
        "other",
    ]


def test_hybrid_runs_muon_on_hidden_matrices_and_adamw_on_the_rest():
    model = tiny_transformer()
    opt = hybrid("muon", model, matrix_lr=0.02, adam_lr=3e-3)
    assert type(opt.children["matrix"]).__name__ == "Muon"
    assert isinstance(opt.children["adam"], torch.optim.AdamW)
    adam_params = {id(p) for g in opt.children["adam"].param_groups for p in g["params"]}
    assert id(model.embed.weight) in adam_params and id(model.lm_head.weight) in adam_params
    x = torch.randint(0, 16, (8, 8), generator=torch.Generator().manual_seed(1))
    before = lm_loss(model, x).item()
    for _ in range(20):
        opt.zero_grad()
        lm_loss(model, x).backward()
        opt.step()
    assert lm_loss(model, x).item() < before
    assert opt.state[model.blocks[0].qkv.weight]["momentum_buffer"].shape == (48, 16)


def test_an_lr_scheduler_on_the_hybrid_drives_both_children():
    opt = hybrid("muon", tiny_transformer(), matrix_lr=0.02, adam_lr=3e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5)
    assert opt.children["matrix"].param_groups[0]["lr"] == pytest.approx(0.01)
    assert opt.children["adam"].param_groups[0]["lr"] == pytest.approx(1.5e-3)
    del scheduler


def test_hybrid_state_dict_round_trip_continues_bit_identically():
    x = torch.randint(0, 16, (8, 8), generator=torch.Generator().manual_seed(1))

    def train(model, opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            lm_loss(model, x).backward()
            opt.step()

    model = tiny_transformer()
    opt = hybrid("normuon", model, matrix_lr=0.02, adam_lr=3e-3)
    train(model, opt, 2)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    train(model, opt, 3)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    model2 = tiny_transformer()
    model2.load_state_dict(saved["model"])
    opt2 = hybrid("normuon", model2, matrix_lr=0.02, adam_lr=3e-3)
    opt2.load_state_dict(saved["opt"])
    train(model2, opt2, 3)
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.equal(a, b)


def test_hybrid_is_a_one_line_optimizer_for_fit():
    from minidiff.train import fit

    model = tiny_transformer()
    data = torch.randint(0, 16, (32, 8), generator=torch.Generator().manual_seed(2))
    history = fit(
        model,
        lm_loss,
        data,
        steps=4,
        batch_size=8,
        lr_schedule="cosine",
        optimizer=lambda params: hybrid("muon", model, matrix_lr=0.02, adam_lr=3e-3),
        progress=False,
    )
    assert len(history) == 4


def test_matrix_with_adam_accepts_factories_and_custom_roles():
    model = tiny_transformer()
    groups = matrix_param_groups(model, matrix_roles=("attention",), role_hparams={"embedding": {"lr": 1e-2}})
    opt = MatrixWithAdam(groups, lambda g, **kw: torch.optim.SGD(g, lr=0.1, **kw), adam_kwargs={"lr": 1e-3})
    roles = {g["role"]: g["lr"] for g in opt.param_groups}
    assert roles["attention"] == 0.1 and roles["embedding"] == 1e-2 and roles["mlp_gate_up"] == 1e-3


def test_bad_roles_and_conflicting_learning_rates_raise_value_errors():
    model = tiny_transformer()
    with pytest.raises(ValueError, match="matrix_roles"):
        matrix_param_groups(model, matrix_roles=("attention", "everything"))
    with pytest.raises(ValueError, match="cannot go to a matrix optimizer"):
        matrix_param_groups(model, matrix_roles=("norm",))
    with pytest.raises(ValueError, match="matrix_lr or lr"):
        hybrid("muon", model, matrix_lr=0.02, lr=0.02)
