"""Specifications of the subgoal-conditioned maze task (FlexMDM's benchmark): one fixed maze, exact success check."""

from __future__ import annotations

import itertools
import random
from collections import deque

import pytest
import torch

from minidiff.data.tasks import extract_answers, get_task
from minidiff.data.tasks.maze import shortest_path
from minidiff.data.tasks.maze_subgoal import (
    TIERS,
    MazeSubgoalTask,
    divide_maze,
    join_subgoals,
    visits_in_order,
)


@pytest.fixture(scope="module")
def task() -> MazeSubgoalTask:
    return MazeSubgoalTask(size=9, min_subgoals=2, max_subgoals=4, max_path=40, maze_seed=1)


@pytest.fixture(scope="module")
def examples(task):
    return task.generate(60, seed=0)


def _open_neighbours(grid, cell):
    r, c = cell
    for nr, nc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
        if 0 <= nr < len(grid) and 0 <= nc < len(grid) and grid[nr][nc]:
            yield nr, nc


# ---------------------------------------------------------------- the maze
@pytest.mark.parametrize("size", [5, 9, 15])
def test_recursive_division_gives_a_perfect_maze(size):
    grid = divide_maze(size, random.Random(size))
    rooms = [(r, c) for r in range(0, size, 2) for c in range(0, size, 2)]
    assert all(grid[r][c] for r, c in rooms)
    assert not any(grid[r][c] for r in range(1, size, 2) for c in range(1, size, 2))
    open_cells = {(r, c) for r in range(size) for c in range(size) if grid[r][c]}
    assert len(open_cells) == 2 * len(rooms) - 1  # a tree: rooms - 1 doors between them
    seen, queue = {(0, 0)}, deque([(0, 0)])
    while queue:
        for nxt in _open_neighbours(grid, queue.popleft()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    assert seen == open_cells


def test_one_fixed_maze_per_task_deterministic_from_maze_seed():
    a, b, c = MazeSubgoalTask(maze_seed=3), MazeSubgoalTask(maze_seed=3), MazeSubgoalTask(maze_seed=4)
    assert a.grid == b.grid and a.grid != c.grid
    assert a.generate(5, seed=0)[0].answer == b.generate(5, seed=0)[0].answer


def test_registered_under_its_name_and_tiers_grow():
    assert isinstance(get_task("maze_subgoal", size=7), MazeSubgoalTask)
    sizes = [MazeSubgoalTask.tier(name) for name in ("easy", "medium", "hard")]
    assert [t.size for t in sizes] == [TIERS[n]["size"] for n in ("easy", "medium", "hard")]
    assert sizes[0].size < sizes[1].size < sizes[2].size
    assert sizes[0].max_path < sizes[1].max_path < sizes[2].max_path


# ---------------------------------------------------------------- the examples
def test_generation_is_deterministic_per_seed_and_differs_across_seeds(task):
    a, b, c = task.generate(20, seed=3), task.generate(20, seed=3), task.generate(20, seed=4)
    assert [(e.prompt, e.answer) for e in a] == [(e.prompt, e.answer) for e in b]
    assert [(e.prompt, e.answer) for e in a] != [(e.prompt, e.answer) for e in c]


def test_prompt_is_the_ordered_subgoals_and_the_path_joins_shortest_segments(task, examples):
    for e in examples:
        subgoals = e.meta["subgoals"]
        assert task.min_subgoals <= len(subgoals) <= task.max_subgoals
        assert e.prompt == [task.token(c) for c in subgoals]
        assert 2 <= len(e.answer) <= task.max_path
        assert [e.answer[p] for p in e.meta["subgoal_pos"]] == e.prompt
        segments = [len(shortest_path(task.grid, a, b)) - 1 for a, b in zip(subgoals, subgoals[1:])]
        assert len(e.answer) == 1 + sum(segments)
    assert len({len(e.answer) for e in examples}) > 3


def test_reference_answers_score_one_on_every_metric(task, examples):
    metrics = task.evaluate(examples, [e.answer for e in examples])
    assert all(value == 1.0 for value in metrics.values()), metrics


def test_anchored_batch_holds_the_path_with_subgoals_as_anchors(task, examples):
    batch = task.anchored(examples)
    assert batch.tokens.shape == (len(examples), task.max_path)
    for row, anchors, e in zip(batch.tokens.tolist(), batch.prompt_mask, examples):
        assert row[: len(e.answer)] == e.answer
        assert set(row[len(e.answer) :]) <= {task.vocab.pad_id}
        assert [row[i] for i in anchors.nonzero().flatten().tolist()] == e.prompt
    assert torch.equal(batch.valid, batch.tokens != task.vocab.pad_id)
    tokens, anchors = task.anchor_prompts(examples)
    for row, e in zip(tokens.tolist(), examples):
        assert row[: len(e.prompt)] == e.prompt
    assert torch.equal(anchors, tokens != task.vocab.pad_id)


def test_the_mdm_layout_round_trips(task, examples):
    batch = task.batch(examples, length=1 + task.max_subgoals + task.max_path, eos=False)
    assert extract_answers(batch.tokens, examples, task.vocab) == [e.answer for e in examples]
    assert task.evaluate(examples, batch.tokens)["correct"] == 1.0


# ---------------------------------------------------------------- the success check
def _wall_detour(task, e):
    for i, token in enumerate(e.answer):
        r, c = task.cell(token)
        for wall in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if 0 <= wall[0] < task.size and 0 <= wall[1] < task.size and not task.grid[wall[0]][wall[1]]:
                return e.answer[: i + 1] + [task.token(wall)] + e.answer[i:]  # step into the wall and back
    raise AssertionError("no wall next to the path")


def test_rejects_a_path_through_a_wall(task, examples):
    e = examples[0]
    metrics = task.check(e, _wall_detour(task, e))
    assert metrics["correct"] == 0.0 and metrics["valid_cells"] < 1.0 and metrics["valid_moves"] < 1.0


def test_rejects_a_jump_between_non_adjacent_cells(task, examples):
    e = next(e for e in examples if len(e.answer) > 3)
    skip = next(i for i in range(1, len(e.answer) - 1) if i not in e.meta["subgoal_pos"])
    metrics = task.check(e, e.answer[:skip] + e.answer[skip + 1 :])
    assert metrics["correct"] == 0.0 and metrics["valid_cells"] == 1.0 and metrics["valid_moves"] < 1.0


def test_rejects_subgoals_out_of_order(task):
    rng = random.Random(0)
    for _ in range(500):
        s = rng.sample(task.open_cells, 4)
        path, _ = join_subgoals(task.grid, [s[0], s[2], s[1], s[3]])  # visits s3 before s2
        if not visits_in_order(path, s):
            break
    else:
        raise AssertionError("no out-of-order path found")
    e = task.generate(1, seed=0)[0]
    e.prompt = [task.token(c) for c in s]
    metrics = task.check(e, [task.token(c) for c in path])
    assert metrics["valid_moves"] == 1.0 and metrics["reaches_goal"] == 1.0
    assert metrics["subgoals_in_order"] == 0.0 and metrics["correct"] == 0.0


def test_rejects_a_path_that_stops_short(task, examples):
    e = examples[0]
    metrics = task.check(e, e.answer[:-1])
    assert metrics["correct"] == 0.0 and metrics["reaches_goal"] == 0.0 and metrics["valid_moves"] == 1.0


def test_rejects_a_path_that_does_not_start_at_the_first_subgoal(task, examples):
    e = examples[0]
    assert task.check(e, e.answer[1:])["correct"] == 0.0


def test_visits_in_order_is_a_subsequence_test():
    assert visits_in_order([1, 2, 3, 2, 4], [1, 2, 4]) and visits_in_order([1, 3, 2, 3], [1, 2, 3])
    assert not visits_in_order([1, 3, 2], [1, 2, 3]) and not visits_in_order([], [1])


def test_garbage_answers_are_wrong_not_crashes(task, examples):
    rng = random.Random(0)
    garbage = [[], [-1], [len(task.vocab)], [10**6, 5], [task.vocab.mask_id] * 3, [task.vocab.pad_id]]
    garbage += [[rng.randrange(len(task.vocab)) for _ in range(rng.randint(1, 12))] for _ in range(20)]
    for e, answer in itertools.product(examples[:5], garbage):
        metrics = task.check(e, answer)
        assert metrics["correct"] in (0.0, 1.0)
        assert all(0.0 <= v <= 1.0 for v in metrics.values()), (answer, metrics)
        assert isinstance(task.render(e, answer), str)
    for answer in garbage[:6]:
        assert task.check(examples[0], answer)["correct"] == 0.0


def test_render_marks_walls_subgoals_and_path(task, examples):
    text = task.render(examples[0])
    assert text.count("\n") == task.size - 1 and "#" in text and "1" in text and "*" in text


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"size": 8}, "size"),
        ({"size": 3}, "size"),
        ({"min_subgoals": 1}, "min_subgoals"),
        ({"min_subgoals": 3, "max_subgoals": 2}, "max_subgoals"),
        ({"max_path": 1}, "max_path"),
        ({"maze_seed": -1}, "maze_seed"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MazeSubgoalTask(**kwargs)


def test_unknown_tier_and_bad_n_raise():
    with pytest.raises(ValueError, match="tier must be one of"):
        MazeSubgoalTask.tier("impossible")
    with pytest.raises(ValueError, match="n must be"):
        MazeSubgoalTask().generate(-1, seed=0)
