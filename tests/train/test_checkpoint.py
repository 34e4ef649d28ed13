import pickle
import random

import numpy as np
import pytest
import torch

from minidiff.train import History, load_checkpoint, save_checkpoint
from minidiff.train.checkpoint import FORMAT
from minidiff.train.lr_schedules import get_lr_schedule


def _mlp(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def _trained_state(seed: int = 0, steps: int = 3):
    model = _mlp(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, get_lr_schedule("cosine", steps=10, warmup=2))
    for _ in range(steps):
        model(torch.randn(5, 4)).square().mean().backward()
        opt.step()
        opt.zero_grad()
        sched.step()
    return model, opt, sched


def _assert_nested_equal(a, b):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_nested_equal(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_nested_equal(x, y)
    else:
        assert a == b


def test_round_trip_restores_model_optimizer_scheduler_generator_and_history(tmp_path):
    model, opt, sched = _trained_state()
    gen = torch.Generator().manual_seed(7)
    torch.rand(10, generator=gen)
    history = History()
    history.log(1, loss=2.0, lr=0.1, grad_norm=1.5, tokens=32, wall_time=0.1, metrics={"acc": 0.5})
    history.log_eval(1, {"val_loss": 1.9})
    save_checkpoint(
        tmp_path / "ck.pt",
        model=model,
        optimizer=opt,
        scheduler=sched,
        history=history,
        step=3,
        generator=gen,
    )

    model2, opt2, sched2 = _trained_state(seed=1, steps=1)
    gen2 = torch.Generator().manual_seed(0)
    state = load_checkpoint(
        tmp_path / "ck.pt", model=model2, optimizer=opt2, scheduler=sched2, generator=gen2
    )

    assert state["step"] == 3
    _assert_nested_equal(model.state_dict(), model2.state_dict())
    _assert_nested_equal(opt.state_dict(), opt2.state_dict())
    _assert_nested_equal(sched.state_dict(), sched2.state_dict())
    assert torch.equal(gen.get_state(), gen2.get_state())
    assert state["history"] == history


def test_file_loads_with_plain_torch_load_weights_only(tmp_path):
    model, opt, sched = _trained_state()
    save_checkpoint(
        tmp_path / "ck.pt",
        model=model,
        optimizer=opt,
        scheduler=sched,
        history=History(),
        step=3,
        generator=torch.Generator(),
        extra={"note": "hi", "values": [1, 2.5]},
    )
    payload = torch.load(tmp_path / "ck.pt", weights_only=True)
    assert payload["format"] == FORMAT
    assert payload["extra"] == {"note": "hi", "values": [1, 2.5]}


def test_global_rng_states_are_restored(tmp_path):
    save_checkpoint(tmp_path / "ck.pt", model=_mlp(0), step=0)

    def draw():
        return torch.rand(4), random.random(), np.random.rand(3), np.random.randn()  # noqa: NPY002 (global RNG on purpose)

    first = draw()
    load_checkpoint(tmp_path / "ck.pt")
    again = draw()
    assert torch.equal(first[0], again[0])
    assert first[1] == again[1]
    assert np.array_equal(first[2], again[2])
    assert first[3] == again[3]


def test_restore_rng_false_leaves_the_global_rng_alone(tmp_path):
    save_checkpoint(tmp_path / "ck.pt", model=_mlp(0), step=0)
    first = torch.rand(4)
    load_checkpoint(tmp_path / "ck.pt", restore_rng=False)
    assert not torch.equal(first, torch.rand(4))


class _Arbitrary:
    pass


def test_arbitrary_pickled_objects_are_refused(tmp_path):
    torch.save({"format": FORMAT, "payload": _Arbitrary()}, tmp_path / "evil.pt")
    with pytest.raises(pickle.UnpicklingError, match="weights_only"):
        load_checkpoint(tmp_path / "evil.pt")


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*nope.pt"):
        load_checkpoint(tmp_path / "nope.pt", model=_mlp(0))


def test_model_with_other_keys_is_rejected_with_the_keys_named(tmp_path):
    save_checkpoint(tmp_path / "ck.pt", model=_mlp(0), step=0)
    other = torch.nn.Sequential(torch.nn.Linear(4, 8))
    with pytest.raises(ValueError, match=r"missing keys \[\].*unexpected keys \['2.bias', '2.weight'\]"):
        load_checkpoint(tmp_path / "ck.pt", model=other)


def test_model_with_other_shapes_is_rejected(tmp_path):
    save_checkpoint(tmp_path / "ck.pt", model=_mlp(0), step=0)
    other = torch.nn.Sequential(torch.nn.Linear(4, 9), torch.nn.ReLU(), torch.nn.Linear(9, 2))
    with pytest.raises(ValueError, match="(?s)does not match the model.*size mismatch"):
        load_checkpoint(tmp_path / "ck.pt", model=other)


def test_a_plain_state_dict_is_not_a_minidiff_checkpoint(tmp_path):
    torch.save(_mlp(0).state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ValueError, match="not a minidiff checkpoint"):
        load_checkpoint(tmp_path / "sd.pt")


def test_failed_save_keeps_the_previous_checkpoint_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, model=_mlp(0), step=1)
    with pytest.raises(Exception):  # noqa: B017 -- whatever pickle raises for a lambda
        save_checkpoint(path, model=_mlp(0), step=2, extra={"bad": lambda: None})
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]
    assert load_checkpoint(path)["step"] == 1


def test_negative_step_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="step must be a non-negative int"):
        save_checkpoint(tmp_path / "ck.pt", model=_mlp(0), step=-1)
