import math
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from minidiff import seed_everything
from minidiff.data import Batch
from minidiff.nn import Transformer
from minidiff.train import History, fit, load_checkpoint
from minidiff.train.lr_schedules import cosine

V, L = 8, 16


def tiny_model(seed: int = 0, dropout: float = 0.0) -> Transformer:
    seed_everything(seed)  # torch, Python and NumPy: masked_loss draws from all three
    return Transformer(
        vocab_size=V, d_model=32, n_layers=1, n_heads=2, max_len=L, mask="causal", dropout=dropout
    )


def cyclic_rows(n: int = 8) -> torch.Tensor:
    """Rows of the repeating sequence 0 1 ... 7 0 1 ..., each starting at a different phase."""
    seq = torch.arange(V).repeat(4)
    return torch.stack([seq[i : i + L] for i in range(n)])  # [n, L]


def next_token_loss(model, x):
    logits = model(x[:, :-1])  # [B, L-1, V]
    return F.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten())


def masked_loss(model, x):
    """Next-token CE on randomly corrupted inputs: draws from torch, Python and NumPy global RNGs."""
    corrupt = torch.rand(x.shape) < 0.3
    inputs = torch.where(corrupt, torch.randint_like(x, V), x)
    logits = model(inputs[:, :-1])
    weight = 1.0 + 0.01 * random.random() + 0.01 * float(np.random.rand())  # noqa: NPY002 (global RNG on purpose)
    return weight * F.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten())


QUIET = {"progress": False}


def test_loss_decreases_on_a_repeating_sequence():
    history = fit(tiny_model(), next_token_loss, cyclic_rows(), steps=40, batch_size=8, lr=1e-2, **QUIET)
    assert history.loss[0] > 1.5  # about log(8) = 2.08 at init
    assert history.loss[-1] < 0.2
    assert history.loss[-1] < history.loss[0] / 5


def test_history_fields_are_aligned_logged_every_k_and_tokens_cumulative():
    history = fit(
        tiny_model(),
        next_token_loss,
        cyclic_rows(),
        steps=10,
        batch_size=4,
        log_every=3,
        lr=1e-2,
        lr_schedule="cosine",
        warmup=2,
        min_ratio=0.1,
        **QUIET,
    )
    assert history.step == [3, 6, 9, 10]  # every 3rd step and the last
    for key in ("loss", "lr", "grad_norm", "tokens", "wall_time"):
        assert len(getattr(history, key)) == len(history) == 4
    assert history.tokens == [s * 4 * L for s in history.step]  # batch numel, accumulated over every step
    assert history.lr == pytest.approx(
        [1e-2 * cosine(s - 1, steps=10, warmup=2, min_ratio=0.1) for s in history.step]
    )
    assert all(b >= a for a, b in zip(history.wall_time, history.wall_time[1:]))


def test_loss_metrics_go_to_extra_and_a_tokens_metric_sets_the_count():
    def loss_fn(model, x):
        logits = model(x[:, :-1])
        acc = (logits.argmax(-1) == x[:, 1:]).float().mean()
        return F.cross_entropy(logits.flatten(0, 1), x[:, 1:].flatten()), {"acc": acc, "tokens": 5}

    history = fit(tiny_model(), loss_fn, cyclic_rows(), steps=4, batch_size=2, grad_accum=2, **QUIET)
    assert history.tokens == [10, 20, 30, 40]  # 5 per micro-batch, 2 micro-batches per step
    assert set(history.extra) == {"acc"}
    assert len(history.extra["acc"]) == 4 and all(0 <= a <= 1 for a in history.extra["acc"])


def test_eval_fn_runs_every_eval_every_and_at_the_end_in_eval_mode_without_grad():
    calls = []

    def eval_fn(model):
        calls.append((model.training, torch.is_grad_enabled()))
        return {"val": torch.tensor(float(len(calls)))}

    model = tiny_model()
    history = fit(
        model, next_token_loss, cyclic_rows(), steps=10, batch_size=2, eval_fn=eval_fn, eval_every=4, **QUIET
    )
    assert history.evals == [{"step": 4, "val": 1.0}, {"step": 8, "val": 2.0}, {"step": 10, "val": 3.0}]
    assert calls == [(False, False)] * 3
    assert model.training


def test_eval_fn_without_eval_every_runs_once_at_the_end_and_the_progress_bar_shows_it(capsys):
    history = fit(
        tiny_model(), next_token_loss, cyclic_rows(), steps=3, batch_size=2, eval_fn=lambda m: {"x": 1}
    )
    assert history.evals == [{"step": 3, "x": 1.0}]
    bar = capsys.readouterr().err
    assert "3/3" in bar and "loss=" in bar and "x=1" in bar


def test_nan_loss_raises_floating_point_error_naming_the_step():
    calls = []

    def loss_fn(model, x):
        calls.append(1)
        loss = next_token_loss(model, x)
        return loss * math.nan if len(calls) == 3 else loss

    with pytest.raises(FloatingPointError, match="loss is nan at step 3") as info:
        fit(tiny_model(), loss_fn, cyclic_rows(), steps=10, batch_size=2, **QUIET)
    assert info.value.history.step == [1, 2]


def test_callable_data_gets_batch_size_and_the_fit_generator():
    seen = []

    def data(batch_size, generator):
        seen.append((batch_size, generator.initial_seed()))
        return cyclic_rows()[torch.randint(8, (batch_size,), generator=generator)]

    history = fit(tiny_model(), next_token_loss, data, steps=3, batch_size=5, seed=11, **QUIET)
    assert seen == [(5, 11)] * 3
    assert history.tokens == [5 * L, 10 * L, 15 * L]


def test_tensor_data_samples_rows_with_replacement():
    rows = cyclic_rows(3)
    batches = []

    def loss_fn(model, x):
        batches.append(x)
        return next_token_loss(model, x)

    fit(tiny_model(), loss_fn, rows, steps=5, batch_size=6, **QUIET)
    stacked = torch.cat(batches)  # [30, L]
    assert all(any(torch.equal(r, row) for row in rows) for r in stacked)
    assert len({tuple(r.tolist()) for r in stacked}) == 3  # 30 draws of 3 rows: all appear, some repeat


def test_batch_data_is_sampled_as_batches_and_counts_valid_tokens():
    tokens = cyclic_rows(4)
    valid = torch.ones_like(tokens, dtype=torch.bool)
    valid[:, 12:] = False  # pretend the last 4 positions are padding
    data = Batch(tokens, valid.clone(), valid.clone(), valid, torch.full((4,), 2))

    def loss_fn(model, batch):
        assert isinstance(batch, Batch) and batch.tokens.shape == (3, L)
        return next_token_loss(model, batch.tokens)

    history = fit(tiny_model(), loss_fn, data, steps=2, batch_size=3, device="cpu", **QUIET)
    assert history.tokens == [3 * 12, 6 * 12]


def test_same_seed_gives_the_same_run_and_another_seed_another_one():
    def run(seed):
        return fit(
            tiny_model(), next_token_loss, cyclic_rows(), steps=3, batch_size=2, seed=seed, **QUIET
        ).loss

    assert run(0) == run(0)
    assert run(0) != run(1)


def test_optimizer_as_instance_factory_or_name():
    model = tiny_model()
    sgd = torch.optim.SGD(model.parameters(), lr=0.05)
    history = fit(
        model, next_token_loss, cyclic_rows(), steps=2, batch_size=2, optimizer=sgd, lr=1.0, **QUIET
    )
    assert history.lr == [0.05, 0.05]  # the instance's own LR; fit's lr is unused

    history = fit(
        tiny_model(),
        next_token_loss,
        cyclic_rows(),
        steps=2,
        batch_size=2,
        lr=0.5,
        optimizer=lambda params: torch.optim.SGD(params, lr=0.02),
        **QUIET,
    )
    assert history.lr == [0.02, 0.02]

    with pytest.raises(ValueError, match="unknown optimizer 'nope'.*adamw"):
        fit(tiny_model(), next_token_loss, cyclic_rows(), steps=2, batch_size=2, optimizer="nope", **QUIET)


def test_gradient_norm_is_logged_before_clipping_and_the_update_is_clipped():
    model = tiny_model()
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    history = fit(
        model,
        next_token_loss,
        cyclic_rows(),
        steps=1,
        batch_size=4,
        clip=1e-3,
        optimizer=lambda params: torch.optim.SGD(params, lr=1.0),
        **QUIET,
    )
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert history.grad_norm[0] > 0.1  # the raw norm
    assert (after - before).norm().item() == pytest.approx(
        1e-3, rel=1e-3
    )  # SGD with lr 1 moves by the clipped grad


def test_grad_accum_averages_micro_batch_gradients():
    rows = cyclic_rows(4)
    data = lambda batch_size, generator: rows  # the same batch every time

    def sgd_run(grad_accum):
        model = tiny_model()
        history = fit(
            model,
            next_token_loss,
            data,
            steps=2,
            batch_size=4,
            grad_accum=grad_accum,
            optimizer=lambda params: torch.optim.SGD(params, lr=0.1),
            **QUIET,
        )
        return model, history

    m1, h1 = sgd_run(1)
    m2, h2 = sgd_run(2)
    assert h2.tokens == [2 * t for t in h1.tokens]
    assert h2.loss == pytest.approx(h1.loss)
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(p1, p2)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"steps": 0}, ValueError, "steps must be a positive int"),
        ({"batch_size": -1}, ValueError, "batch_size must be a positive int"),
        ({"lr": 0.0}, ValueError, "lr must be a positive number"),
        ({"weight_decay": -0.1}, ValueError, "weight_decay must be a non-negative number"),
        ({"clip": 0}, ValueError, "clip must be None"),
        ({"eval_every": 5}, ValueError, "eval_every requires eval_fn"),
        ({"checkpoint_every": 5}, ValueError, "checkpoint_every requires checkpoint"),
        ({"log_every": 0}, ValueError, "log_every must be a positive int"),
        ({"grad_accum": 1.5}, ValueError, "grad_accum must be a positive int"),
        ({"seed": -1}, ValueError, "seed must be a non-negative int"),
        ({"lr_schedule": "linear"}, ValueError, "lr_schedule must be one of"),
        ({"warmup": 20}, ValueError, "warmup must be at most steps=10"),
        ({"lr_schedule": "cosine", "decay_frac": 0.1}, ValueError, "unknown argument.*decay_frac"),
        ({"optimizer": 3}, TypeError, "optimizer must be a registry name"),
    ],
)
def test_bad_arguments_are_rejected_naming_them(kwargs, error, match):
    kwargs = {"steps": 10, "batch_size": 2, **kwargs}
    with pytest.raises(error, match=match):
        fit(tiny_model(), next_token_loss, cyclic_rows(), progress=False, **kwargs)


def test_bad_data_is_rejected():
    with pytest.raises(TypeError, match="data must be a callable"):
        fit(tiny_model(), next_token_loss, [[1, 2]], steps=1, batch_size=1, progress=False)
    with pytest.raises(ValueError, match="data must hold at least one row"):
        fit(
            tiny_model(),
            next_token_loss,
            torch.zeros(0, L, dtype=torch.long),
            steps=1,
            batch_size=1,
            progress=False,
        )


def test_non_scalar_loss_is_rejected():
    with pytest.raises(ValueError, match="loss_fn must return a scalar tensor"):
        fit(tiny_model(), lambda m, x: m(x).sum(-1), cyclic_rows(), steps=1, batch_size=1, progress=False)


# --- checkpointing and resuming -------------------------------------------------------------------------------


def _resumable_fit(model, loss_fn, checkpoint=None, checkpoint_every=None):
    """AdamW (stateful) with weight decay, cosine with warmup, grad accumulation, dropout and an RNG-using eval."""
    return fit(
        model,
        loss_fn,
        cyclic_rows(),
        steps=12,
        batch_size=3,
        grad_accum=2,
        lr=3e-3,
        weight_decay=0.1,
        lr_schedule="cosine",
        warmup=3,
        min_ratio=0.1,
        eval_fn=lambda m: {"probe": torch.rand(())},
        eval_every=4,
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
        seed=3,
        progress=False,
    )


def _assert_same_history(a: History, b: History) -> None:
    assert a.step == b.step
    assert a.loss == b.loss
    assert a.lr == b.lr
    assert a.grad_norm == b.grad_norm
    assert a.tokens == b.tokens
    assert a.evals == b.evals


def test_resume_after_a_crash_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    straight_model = tiny_model(seed=0, dropout=0.1)
    straight = _resumable_fit(straight_model, masked_loss)

    calls = []

    def crashing_loss(model, x):
        calls.append(1)
        if len(calls) > 2 * 7:  # two micro-batches per step: crash during step 8
            raise RuntimeError("simulated crash")
        return masked_loss(model, x)

    path = tmp_path / "run.pt"
    with pytest.raises(RuntimeError, match="simulated crash"):
        _resumable_fit(tiny_model(seed=0, dropout=0.1), crashing_loss, checkpoint=path, checkpoint_every=3)
    assert load_checkpoint(path, restore_rng=False)["step"] == 6

    # A fresh process would start from other RNG states and another initialisation: both must be overwritten.
    seed_everything(999)
    resumed_model = tiny_model(seed=1, dropout=0.1)
    resumed = _resumable_fit(resumed_model, masked_loss, checkpoint=path, checkpoint_every=3)

    for (name, p), q in zip(straight_model.named_parameters(), resumed_model.parameters()):
        assert torch.equal(p, q), name
    _assert_same_history(straight, resumed)
    assert load_checkpoint(path, restore_rng=False)["step"] == 12


def test_resuming_a_finished_run_returns_its_history_without_training(tmp_path):
    path = tmp_path / "run.pt"
    model = tiny_model()
    first = fit(model, next_token_loss, cyclic_rows(), steps=4, batch_size=2, checkpoint=path, **QUIET)
    again_model = tiny_model(seed=5)
    again = fit(again_model, next_token_loss, cyclic_rows(), steps=4, batch_size=2, checkpoint=path, **QUIET)
    _assert_same_history(first, again)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), again_model.parameters()))


def test_resume_false_starts_over(tmp_path):
    path = tmp_path / "run.pt"
    fit(tiny_model(), next_token_loss, cyclic_rows(), steps=4, batch_size=2, checkpoint=path, **QUIET)
    history = fit(
        tiny_model(),
        next_token_loss,
        cyclic_rows(),
        steps=2,
        batch_size=2,
        checkpoint=path,
        resume=False,
        **QUIET,
    )
    assert history.step == [1, 2]
    assert load_checkpoint(path, restore_rng=False)["step"] == 2


def test_checkpoint_beyond_steps_is_an_error(tmp_path):
    path = tmp_path / "run.pt"
    fit(tiny_model(), next_token_loss, cyclic_rows(), steps=4, batch_size=2, checkpoint=path, **QUIET)
    with pytest.raises(ValueError, match="at step 4, beyond steps=2"):
        fit(tiny_model(), next_token_loss, cyclic_rows(), steps=2, batch_size=2, checkpoint=path, **QUIET)


# --- History --------------------------------------------------------------------------------------------------


def _history() -> History:
    h = History()
    for step, loss in enumerate([4.0, 2.0, 3.0, 1.0], start=1):
        metrics = {"acc": 0.5} if step > 2 else {}
        h.log(step, loss=loss, lr=0.1, grad_norm=1.0, tokens=10 * step, wall_time=0.1 * step, metrics=metrics)
    h.log_eval(4, {"val_loss": torch.tensor(1.5), "accuracy": np.float32(0.25)})
    return h


def test_history_backfills_extra_metrics_with_nan_to_stay_aligned():
    h = _history()
    assert len(h) == 4
    assert len(h.extra["acc"]) == 4
    assert all(math.isnan(v) for v in h.extra["acc"][:2]) and h.extra["acc"][2:] == [0.5, 0.5]
    assert h.evals == [{"step": 4, "val_loss": 1.5, "accuracy": 0.25}]


def test_history_smoothed_is_a_trailing_mean():
    h = _history()
    assert h.smoothed("loss", 2) == [4.0, 3.0, 2.5, 2.0]
    assert h.smoothed("loss", 1) == h.loss
    assert h.smoothed("acc", 3)[2:] == [0.5, 0.5]  # NaNs ignored
    with pytest.raises(KeyError, match="unknown history key 'nope'"):
        h.smoothed("nope", 2)
    with pytest.raises(ValueError, match="window must be a positive int"):
        h.smoothed("loss", 0)


def test_history_dict_round_trip_survives_a_weights_only_load(tmp_path):
    h = _history()
    torch.save(h.to_dict(), tmp_path / "h.pt")
    back = History.from_dict(torch.load(tmp_path / "h.pt", weights_only=True))
    assert back.step == h.step and back.loss == h.loss and back.evals == h.evals
    assert back.extra.keys() == h.extra.keys()


def test_history_plot_has_log_loss_eval_overlay_lr_and_grad_norm():
    pytest.importorskip("plotly")
    fig = _history().plot(smooth=2)
    names = [trace.name for trace in fig.data]
    assert names == ["loss", "loss (mean of 2)", "eval accuracy", "eval val_loss", "lr", "grad norm"]
    assert fig.layout.yaxis.type == "log"


def test_core_library_imports_without_plotly_and_loads_optimizers_only_on_demand():
    code = (
        "import sys; sys.modules['plotly'] = None\n"  # makes `import plotly` fail
        "import minidiff.train, minidiff.optim\n"
        "assert 'minidiff.optim.adamw' not in sys.modules\n"
        "import torch; minidiff.optim.create('adamw', [torch.zeros(1, requires_grad=True)])\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
