"""widgets.growth.GrowthPlayer over a FlexMDM sampling trace (plain sequences and the subgoal maze)."""

from __future__ import annotations

import plotly.graph_objects as go
import pytest
import torch

from minidiff.data.tasks.maze_subgoal import MazeSubgoalTask
from minidiff.diffusion.flexible import FlexibleDiffusion, FlexOutput
from minidiff.diffusion.sampling.flexible import sample_flexible
from widgets.growth import SLOT_KINDS, GrowthPlayer


class Stub:
    """Uniform token logits, a constant expected gap count: a sampler run without training."""

    def __init__(self, vocab: int, gap: float) -> None:
        self.vocab, self.gap = vocab, gap

    def __call__(self, x, t, *, lengths):
        b, n = x.shape
        return FlexOutput(torch.zeros(b, n, self.vocab), torch.full((b, n + 1), self.gap))


@pytest.fixture(scope="module")
def maze_run():
    task = MazeSubgoalTask(size=7, min_subgoals=2, max_subgoals=3, max_path=24, maze_seed=0)
    v = task.vocab
    proc = FlexibleDiffusion(len(v), v.mask_id, v.pad_id, max_length=24)
    examples = task.generate(3, seed=0)
    _, trace = sample_flexible(Stub(len(v), 0.6), proc, task.anchor_prompts(examples), steps=12,
                               generator=torch.Generator().manual_seed(0))  # fmt: skip
    return task, proc, examples, trace


def _by_name(fig: go.Figure, name: str):
    return next(t for t in fig.data if t.name == name)


def test_grid_is_the_steps_and_the_samples(maze_run):
    task, proc, _, trace = maze_run
    player = GrowthPlayer(trace, process=proc, maze=task, rows=[0, 2], max_frames=5)
    assert player.params["step"] == [0, 3, 6, 9, 12] and player.params["sample"] == [0, 2]
    assert "maze=True" in repr(player)


def test_strip_shows_each_slot_kind_as_the_trace_says(maze_run):
    task, proc, _, trace = maze_run
    player = GrowthPlayer(trace, process=proc, maze=task)
    for step in (0, 5, 12):
        kinds, labels = player._kinds(step, 0)
        length = int(trace.lengths[step, 0])
        assert (kinds[length:] == SLOT_KINDS.index("empty")).all()
        anchors = trace.anchor_states[step, 0, :length]
        assert (kinds[:length][anchors.numpy()] == SLOT_KINDS.index("anchor")).all()
        masks = (trace.states[step, 0, :length] == trace.mask_id).numpy()
        assert set(kinds[:length][masks].tolist()) <= {
            SLOT_KINDS.index("mask"),
            SLOT_KINDS.index("inserted now"),
        }
    new = trace.inserted[4, 0] & (trace.states[5, 0] == trace.mask_id)
    kinds, _ = player._kinds(5, 0)
    assert (kinds[new.numpy()] == SLOT_KINDS.index("inserted now")).all()
    final, _ = player._kinds(12, 0)
    assert SLOT_KINDS.index("mask") not in final.tolist()  # nothing masked at the end


def test_maze_panel_draws_walls_subgoals_and_the_final_path(maze_run):
    task, proc, examples, trace = maze_run
    fig = GrowthPlayer(trace, process=proc, maze=task).figure(step=12, sample=0)
    walls = next(t for t in fig.data if t.type == "heatmap" and t.xaxis == "x2")
    assert [[bool(w) for w in row] for row in walls.z] == [[not o for o in row] for row in task.grid]
    subgoals = _by_name(fig, "subgoals")
    assert list(zip(subgoals.y, subgoals.x)) == examples[0].meta["subgoals"]
    path = _by_name(fig, "path so far")
    cells = [task.cell(t) for t in trace.sequences()[0]]
    assert [(r, c) for r, c in zip(path.y, path.x) if r is not None] == cells
    assert f"length {int(trace.lengths[12, 0])}" in fig.layout.annotations[0].text


def test_schedule_panel_plots_both_schedules_against_paper_time(maze_run):
    task, proc, _, trace = maze_run
    fig = GrowthPlayer(trace, process=proc).figure(step=6)
    inserted, unmasked = _by_name(fig, "β(τ): inserted"), _by_name(fig, "unmasked")
    tau = torch.tensor(inserted.x, dtype=torch.float64)
    present, clean = proc.marginals(1 - tau)
    torch.testing.assert_close(torch.tensor(inserted.y, dtype=torch.float64), present)
    torch.testing.assert_close(
        torch.tensor(unmasked.y, dtype=torch.float64), present * clean, atol=1e-6, rtol=0
    )
    assert inserted.y[0] == pytest.approx(0.0) and inserted.y[-1] == pytest.approx(1.0)
    assert all(u <= i + 1e-9 for u, i in zip(unmasked.y, inserted.y))
    sample = _by_name(fig, "this sample: inserted")
    assert len(sample.x) == 7 and sample.y[-1] <= 1.0  # points up to the step
    assert fig.layout.shapes[0].x0 == pytest.approx(0.5)


def test_without_a_maze_the_panel_shows_length_and_masks(maze_run):
    _, _, _, trace = maze_run
    fig = GrowthPlayer(trace).figure(step=3)
    lengths = [t for t in fig.data if t.name == "length"]
    assert lengths and list(lengths[0].y) == trace.lengths[:, 0].tolist()
    assert not any(t.name == "β(τ): inserted" for t in fig.data)  # no process: no schedule curves


def test_static_face_is_a_plotly_figure_with_a_slider(maze_run):
    task, proc, _, trace = maze_run
    fig = GrowthPlayer(trace, process=proc, maze=task, rows=[0, 1], max_frames=4).static()
    assert isinstance(fig, go.Figure) and fig.layout.sliders and len(fig.layout.sliders[0].steps) == 4


def test_rejects_bad_input(maze_run):
    _, _, _, trace = maze_run
    with pytest.raises(TypeError, match="trace must be a FlexTrace"):
        GrowthPlayer(object())
    with pytest.raises(ValueError, match=r"rows must be a non-empty list of sample indices in \[0, 3\)"):
        GrowthPlayer(trace, rows=[5])
    with pytest.raises(ValueError, match="max_frames must be an int >= 2"):
        GrowthPlayer(trace, max_frames=1)
