import math

import pytest
import torch

from minidiff.train.lr_schedules import constant, cosine, get_lr_schedule, wsd


def test_linear_warmup_ramps_to_one_on_the_last_warmup_step():
    assert [constant(s, steps=10, warmup=4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert cosine(0, steps=10, warmup=4) == 0.25
    assert wsd(1, steps=10, warmup=4) == 0.5


def test_no_warmup_starts_at_full_lr():
    assert constant(0, steps=5) == 1.0
    assert cosine(0, steps=5) == 1.0
    assert wsd(0, steps=5) == 1.0


def test_cosine_hand_computed_values():
    assert cosine(5, steps=10) == pytest.approx(0.5)  # p = 1/2: cos(pi/2) = 0
    assert cosine(5, steps=10, min_ratio=0.1) == pytest.approx(0.55)
    assert cosine(6, steps=10, warmup=2) == pytest.approx(0.5)  # p = (6 - 2) / (10 - 2)
    assert cosine(3, steps=12) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert cosine(10, steps=10, min_ratio=0.1) == pytest.approx(0.1)  # reaches min_ratio at s = steps
    assert cosine(25, steps=10, min_ratio=0.1) == pytest.approx(0.1)  # and stays there


def test_cosine_is_non_increasing_after_warmup_and_stays_above_min_ratio():
    values = [cosine(s, steps=50, warmup=5, min_ratio=0.2) for s in range(4, 51)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert min(values) == pytest.approx(0.2)


def test_wsd_warmup_plateau_and_linear_decay():
    values = [wsd(s, steps=10, warmup=2, decay_frac=0.2) for s in range(11)]
    assert values == pytest.approx([0.5, 1, 1, 1, 1, 1, 1, 1, 1, 0.5, 0.0])


def test_wsd_one_minus_sqrt_shape_and_min_ratio():
    assert wsd(9, steps=10, decay_frac=0.2, shape="1-sqrt") == pytest.approx(1 - math.sqrt(0.5))
    assert wsd(9, steps=10, decay_frac=0.2, min_ratio=0.2) == pytest.approx(0.2 + 0.8 * 0.5)
    assert wsd(10, steps=10, decay_frac=0.2, shape="1-sqrt", min_ratio=0.1) == pytest.approx(0.1)


def test_wsd_stable_phase_is_flat_and_decay_is_monotone():
    values = [wsd(s, steps=100, warmup=10, decay_frac=0.2) for s in range(101)]
    assert all(v == 1.0 for v in values[9:81])
    decay = values[80:]
    assert all(a > b for a, b in zip(decay, decay[1:]))
    assert decay[-1] == 0.0


def test_wsd_with_no_decay_is_constant():
    assert [wsd(s, steps=5, decay_frac=0.0) for s in range(6)] == [1.0] * 6


def test_get_lr_schedule_drives_lambda_lr():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, get_lr_schedule("cosine", steps=8, warmup=2, min_ratio=0.5)
    )
    lrs = []
    for _ in range(8):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = [0.1 * cosine(s, steps=8, warmup=2, min_ratio=0.5) for s in range(8)]
    assert lrs == pytest.approx(expected)
    assert sched.state_dict()["lr_lambdas"] == [{}]  # nothing unpicklable for a weights_only checkpoint


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("linear", {}, "lr_schedule must be one of"),
        ("cosine", {"warmup": 11}, "warmup must be at most steps=10"),
        ("cosine", {"warmup": -1}, "warmup must be a non-negative int"),
        ("constant", {"steps": 0}, "steps must be a positive int"),
        ("cosine", {"min_ratio": -0.1}, "min_ratio must be a number in"),
        ("wsd", {"decay_frac": 1.5}, "decay_frac must be a number in"),
        ("wsd", {"shape": "cubic"}, r"shape must be one of \('linear', '1-sqrt'\)"),
        ("wsd", {"warmup": 9, "decay_frac": 0.2}, "warmup \\+ decay steps must fit"),
        ("constant", {"min_ratio": 0.1}, "unknown argument.*min_ratio.*'constant'"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(name, kwargs, match):
    kwargs = {"steps": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        get_lr_schedule(name, **kwargs)


def test_negative_step_is_rejected():
    with pytest.raises(ValueError, match="step must be a non-negative int"):
        cosine(-1, steps=10)
