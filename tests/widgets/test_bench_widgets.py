"""widgets.bench.BenchExplorer over the summary of a (synthetic) optimizer benchmark."""

import math

import pytest

from minidiff.train.bench_report import speedup_rows, summarize
from widgets import BenchExplorer

SIZES = ("d16", "d32")


def _finals() -> list[dict]:
    """AdamW at 1/8..2x with loss 0.4·D^-0.5 + 3 per size; "fast" reaches it with 1.25x fewer tokens, "lucky"
    beats every AdamW budget at its largest ratio (out of range)."""
    rows = []
    for s, size in enumerate(SIZES):
        d1 = 1000 * (s + 1)
        for name, ratios, gain in (("adamw", (0.125, 0.25, 0.5, 1, 2), 1.0), ("fast", (0.25, 0.5, 1), 1.25)):
            for ratio in ratios:
                for seed in (0, 1):
                    loss = 0.4 * (gain * ratio) ** -0.5 + 3 - 0.1 * s + 0.002 * seed
                    rows.append(_row(name, size, ratio, int(ratio * d1), seed, loss))
        for seed in (0, 1):
            rows.append(_row("lucky", size, 1, d1, seed, 2.5))
    return rows


def _row(name, size, ratio, tokens, seed, loss):
    return {"optimizer": name, "size": size, "ratio": ratio, "tokens": tokens, "seed": seed, "val_loss": loss,
            "n_params": 100, "lr": 1e-2, "second": "", "second_value": "", "curve": {"step": [], "val_loss": []}}  # fmt: skip


@pytest.fixture(scope="module")
def summary():
    finals = _finals()
    return summarize(finals, speedup_rows(finals))


def test_the_synthetic_speedups_are_what_they_were_built_to_be(summary):
    fast = [r for r in summary if r["optimizer"] == "fast"]
    assert all(r["speedup_flags"] == "ok,ok" for r in fast)
    assert all(1.2 < r["speedup_mean"] < 1.35 for r in fast)  # 1.25, read on a log-linear interpolation
    lucky = [r for r in summary if r["optimizer"] == "lucky"]
    assert all(math.isnan(r["speedup_mean"]) and r["speedup_text"] == "> 2.00" for r in lucky)


def test_speedup_view_draws_a_line_per_optimizer_and_bounds_as_triangles(summary):
    fig = BenchExplorer(summary).figure(size="d32", view="speedup")
    names = [t.name for t in fig.data]
    assert names[:1] == ["fast"] and "lucky (out of adamw's range)" in names
    fast = fig.data[0]  # nudged sideways by a few % so bars do not overlap; the hover keeps the exact ratio
    assert all(0.9 < x / c[2] < 1.1 and x != c[2] for x, c in zip(fast.x, fast.customdata))
    triangles = [t for t in fig.data if t.mode == "markers"]
    assert list(triangles[0].y) == [2.0] and triangles[0].marker.symbol == ("triangle-up-open",)
    assert fig.layout.xaxis.type == "log"


def test_loss_view_draws_every_optimizer_with_seed_bars(summary):
    fig = BenchExplorer(summary).figure(size="d16", view="final loss")
    assert [t.name for t in fig.data] == ["adamw", "fast", "lucky"]
    adamw = fig.data[0]
    assert len(adamw.x) == 5 and adamw.line.dash == "dash"
    assert adamw.error_y.array[0] == pytest.approx(0.001)  # half of the 0.002 gap between the two seeds


def test_static_face_has_a_size_slider_and_view_buttons(summary):
    fig = BenchExplorer(summary).static()
    assert [s.label for s in fig.layout.sliders[0].steps] == list(SIZES)
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["final loss", "speedup"]
    assert len(fig.to_json()) < 200_000


def test_rejects_bad_input(summary):
    with pytest.raises(ValueError, match="non-empty list of its summary"):
        BenchExplorer([])
    with pytest.raises(ValueError, match="lack the column"):
        BenchExplorer([{"optimizer": "adamw"}])
    with pytest.raises(ValueError, match="sizes must be a non-empty subset"):
        BenchExplorer(summary, sizes=["d999"])
    with pytest.raises(ValueError, match="view must be one of"):
        BenchExplorer(summary, view="table")
    with pytest.raises(ValueError, match="baseline 'sgd'"):
        BenchExplorer(summary, baseline="sgd")
