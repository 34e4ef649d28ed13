"""Specifications of the synthetic tasks: the shared protocol for every task, then each task's own rules."""

from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np
import pytest

from minidiff.data.tasks import Example, available_tasks, extract_answers, get_task
from minidiff.data.tasks.brackets import (
    BracketsTask,
    dyck_word,
    empirical_distribution,
    is_balanced,
    total_variation,
)
from minidiff.data.tasks.maze import (
    MazeTask,
    carve_maze,
    cell_from_id,
    cell_symbol,
    is_valid_path,
    shortest_path,
)
from minidiff.data.tasks.sudoku import SudokuTask, count_solutions, is_solved, solve

NAMES = ["arithmetic", "bigram", "brackets", "maze", "reachability", "subset_sum", "sudoku"]
VARIANTS = {
    "maze": ("maze", {}),
    "maze_loops": ("maze", {"height": 9, "width": 5, "loop_fraction": 0.3}),
    "arithmetic": ("arithmetic", {}),
    "arithmetic_all_ops_reversed": ("arithmetic", {"ops": ("+", "-", "*"), "reverse_answer": True}),
    "brackets": ("brackets", {}),
    "brackets_two_types": ("brackets", {"types": 2, "lengths": {2: 0.5, 6: 0.5}}),
    "reachability": ("reachability", {}),
    "reachability_undirected": ("reachability", {"directed": False, "n_nodes": 5}),
    "subset_sum": ("subset_sum", {}),
    "sudoku": ("sudoku", {}),
    "bigram": ("bigram", {}),
}


def make(variant: str):
    name, kwargs = VARIANTS[variant]
    return get_task(name, **kwargs)


def example(task, prompt: list[str], answer: list[str]) -> Example:
    return Example(task.vocab.encode(prompt), task.vocab.encode(answer))


def score(task, ex: Example, answer: list[str]) -> dict[str, float]:
    return task.check(ex, task.vocab.encode(answer))


# ---------------------------------------------------------------- the protocol, for every task


def test_every_task_is_registered():
    assert set(NAMES) <= set(available_tasks())


def test_unknown_task_raises_listing_the_names():
    with pytest.raises(ValueError, match="arithmetic.*sudoku"):
        get_task("nope")


@pytest.mark.parametrize("variant", VARIANTS)
def test_generation_is_deterministic_per_seed_and_differs_across_seeds(variant):
    task = make(variant)
    a, b, c = task.generate(30, seed=3), task.generate(30, seed=3), task.generate(30, seed=4)
    assert [(e.prompt, e.answer) for e in a] == [(e.prompt, e.answer) for e in b]
    assert [(e.prompt, e.answer) for e in a] != [(e.prompt, e.answer) for e in c]


@pytest.mark.parametrize("variant", VARIANTS)
def test_reference_answers_score_one_on_every_metric(variant):
    task = make(variant)
    examples = task.generate(50, seed=0)
    metrics = task.evaluate(examples, [e.answer for e in examples])
    assert metrics["correct"] == 1.0
    assert all(value == 1.0 for value in metrics.values()), metrics


@pytest.mark.parametrize("variant", VARIANTS)
def test_tokens_are_task_symbols_and_answers_vary_in_length(variant):
    task = make(variant)
    examples = task.generate(50, seed=1)
    ids = [t for e in examples for t in e.prompt + e.answer]
    assert min(ids) >= task.vocab.n_specials and max(ids) < len(task.vocab)
    assert len({len(e.answer) for e in examples}) > 1


@pytest.mark.parametrize("variant", VARIANTS)
def test_length_stats_agree_with_the_answers(variant):
    task = make(variant)
    examples = task.generate(40, seed=2)
    lengths = [len(e.answer) for e in examples]
    stats = task.length_stats(examples)
    assert stats["histogram"] == dict(Counter(lengths))
    assert sum(stats["histogram"].values()) == 40
    assert stats["mean"] == pytest.approx(sum(lengths) / 40)
    assert (stats["min"], stats["max"]) == (min(lengths), max(lengths))


@pytest.mark.parametrize("variant", VARIANTS)
def test_to_batch_round_trips_and_evaluate_reads_full_sequences(variant):
    task = make(variant)
    examples = task.generate(20, seed=5)
    batch = task.batch(examples)
    assert extract_answers(batch.tokens, examples, task.vocab) == [e.answer for e in examples]
    for row, e in zip(batch.tokens.tolist(), examples):
        assert row[1 : 1 + len(e.prompt)] == e.prompt
    assert task.evaluate(examples, batch.tokens)["correct"] == 1.0


@pytest.mark.parametrize("variant", VARIANTS)
def test_garbage_answers_are_wrong_not_crashes(variant):
    task = make(variant)
    examples = task.generate(10, seed=6)
    rng = random.Random(0)
    garbage = [[], [-1], [len(task.vocab)], [10**6, 5], [task.vocab.mask_id] * 3, [task.vocab.pad_id]]
    garbage += [[rng.randrange(len(task.vocab)) for _ in range(rng.randint(1, 12))] for _ in range(20)]
    for e in examples:
        for answer in garbage:
            metrics = task.check(e, answer)
            assert metrics["correct"] in (0.0, 1.0)
            assert all(0.0 <= v <= 1.0 for v in metrics.values()), (answer, metrics)
            assert isinstance(task.render(e, answer), str)
        for answer in garbage[:6]:
            assert task.check(e, answer)["correct"] == 0.0, answer


@pytest.mark.parametrize("variant", VARIANTS)
def test_render_is_text_and_generate_rejects_bad_n(variant):
    task = make(variant)
    (e,) = task.generate(1, seed=0)
    assert isinstance(task.render(e), str) and task.render(e)
    assert task.generate(0, seed=0) == []
    with pytest.raises(ValueError, match="n must"):
        task.generate(-1, seed=0)


BAD_ARGS = [
    ("maze", {"height": 6}, "height"),
    ("maze", {"width": 1}, "width"),
    ("maze", {"loop_fraction": 1.5}, "loop_fraction"),
    ("arithmetic", {"max_digits": 0}, "max_digits"),
    ("arithmetic", {"min_digits": 5, "max_digits": 3}, "min_digits"),
    ("arithmetic", {"ops": ("/",)}, "ops"),
    ("arithmetic", {"ops": ()}, "ops"),
    ("brackets", {"lengths": {3: 1.0}}, "lengths"),
    ("brackets", {"lengths": {4: -1.0, 8: 2.0}}, "lengths"),
    ("brackets", {"types": 3}, "types"),
    ("reachability", {"n_nodes": 1}, "n_nodes"),
    ("reachability", {"edge_prob": 0.0}, "edge_prob"),
    ("subset_sum", {"max_items": 13}, "max_items"),
    ("subset_sum", {"min_items": 0}, "min_items"),
    ("subset_sum", {"max_value": 0}, "max_value"),
    ("sudoku", {"max_blanks": 13}, "max_blanks"),
    ("sudoku", {"min_blanks": 8, "max_blanks": 4}, "min_blanks"),
    ("bigram", {"n_symbols": 1}, "n_symbols"),
    ("bigram", {"successors": 9}, "successors"),
    ("bigram", {"stop_prob": 1.0}, "stop_prob"),
    ("bigram", {"concentration": 0.0}, "concentration"),
    ("bigram", {"max_length": 0}, "max_length"),
    ("bigram", {"language_seed": -1}, "language_seed"),
]


@pytest.mark.parametrize("name,kwargs,argument", BAD_ARGS)
def test_bad_constructor_arguments_raise_naming_the_argument(name, kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        get_task(name, **kwargs)


# ---------------------------------------------------------------- maze

# . . .
# # # .      start (0, 0), goal (2, 0): the only path goes round the wall
# . . .
CORRIDOR = [[True, True, True], [False, False, True], [True, True, True]]
AROUND = [(0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0)]


def corridor_example(task: MazeTask) -> Example:
    cells = ["." if open_ else "#" for row in CORRIDOR for open_ in row]
    return example(task, [*cells, "c0", "c6", "="], [cell_symbol(c, 3) for c in AROUND])


def test_maze_cell_tokens_are_row_major_ids():
    task = MazeTask(height=5, width=7)
    assert cell_symbol((2, 3), 7) == "c17" and cell_from_id(17, 7) == (2, 3)
    assert task.vocab.symbols[task.vocab.index["c0"] : task.vocab.index["c0"] + 35] == [
        f"c{i}" for i in range(35)
    ]


def test_maze_helpers_on_a_hand_built_grid():
    assert shortest_path(CORRIDOR, (0, 0), (2, 0)) == AROUND
    assert shortest_path(CORRIDOR, (0, 0), (1, 0)) is None  # a wall
    assert is_valid_path(CORRIDOR, AROUND)
    assert not is_valid_path(CORRIDOR, [(0, 0), (1, 0), (2, 0)])  # through a wall
    assert not is_valid_path(CORRIDOR, [(0, 0), (0, 2)])  # a jump
    assert not is_valid_path(CORRIDOR, [(0, 1), (1, 2)])  # a diagonal between open cells
    assert not is_valid_path(CORRIDOR, [])


def test_maze_carving_gives_a_perfect_maze_without_loops():
    rng = random.Random(0)
    for _ in range(20):
        grid = carve_maze(7, 9, rng)
        rooms = [(r, c) for r in range(0, 7, 2) for c in range(0, 9, 2)]
        assert sum(map(sum, grid)) == 2 * len(rooms) - 1  # a spanning tree: rooms plus rooms - 1 passages
        assert all(shortest_path(grid, (0, 0), room) is not None for room in rooms)


def test_maze_check_accepts_the_route_and_rejects_bad_paths():
    task = MazeTask(height=3, width=3)
    ex = corridor_example(task)
    assert score(task, ex, [cell_symbol(c, 3) for c in AROUND]) == {
        "correct": 1,
        "shortest": 1,
        "valid_moves": 1,
    }
    through_wall = score(task, ex, ["c0", "c3", "c6"])
    assert through_wall["correct"] == 0 and through_wall["valid_moves"] == 0
    assert score(task, ex, ["c0", "c2", "c5", "c8", "c7", "c6"])["correct"] == 0  # non-adjacent c0 -> c2
    assert score(task, ex, ["c0", "c1", "c5", "c8", "c7", "c6"])["correct"] == 0  # diagonal c1 -> c5
    assert score(task, ex, ["c0", "c1", "c2", "c5", "c8", "c7"])["correct"] == 0  # ends short of the goal
    assert score(task, ex, ["c1", "c2", "c5", "c8", "c7", "c6"])["correct"] == 0  # starts off the start
    detour = score(task, ex, ["c0", "c1", "c0", "c1", "c2", "c5", "c8", "c7", "c6"])
    assert detour["correct"] == 1 and detour["shortest"] == 0


def test_maze_meta_matches_the_prompt_and_render_draws_the_grid():
    task = MazeTask()
    (ex,) = task.generate(1, seed=9)
    grid, start, goal = task.parse_prompt(ex.prompt)
    assert grid == ex.meta["grid"] and (start, goal) == (ex.meta["start"], ex.meta["goal"])
    picture = task.render(ex).splitlines()
    assert len(picture) == 7 and "".join(picture).count("S") == 1 and "".join(picture).count("G") == 1


# ---------------------------------------------------------------- arithmetic


def test_arithmetic_references_match_python():
    task = get_task("arithmetic", ops=("+", "-", "*"), min_digits=1, max_digits=5)
    for e in task.generate(100, seed=0):
        text = "".join(task.vocab.decode(e.prompt))
        assert "".join(task.vocab.decode(e.answer)) == str(eval(text[:-1]))


def test_arithmetic_check_on_hand_cases():
    task = get_task("arithmetic")
    ex = example(task, list("12+345="), list("357"))
    assert score(task, ex, list("357")) == {"correct": 1.0, "digit_accuracy": 1.0}
    assert score(task, ex, list("358")) == {"correct": 0.0, "digit_accuracy": pytest.approx(2 / 3)}
    assert score(task, ex, list("57")) == {
        "correct": 0.0,
        "digit_accuracy": pytest.approx(2 / 3),
    }  # units aligned
    assert score(task, ex, list("0357"))["correct"] == 0.0  # only the canonical form counts


def test_arithmetic_reversed_answers_and_negative_results():
    task = get_task("arithmetic", ops=("-",), reverse_answer=True)
    ex = example(task, list("3-12="), list("9-"))
    assert score(task, ex, list("9-"))["correct"] == 1.0
    assert score(task, ex, list("-9"))["correct"] == 0.0
    ex = example(task, list("100-1="), list("99"))
    assert score(task, ex, list("990"))["digit_accuracy"] == pytest.approx(2 / 3)


# ---------------------------------------------------------------- brackets


def test_dyck_words_are_balanced_with_exactly_the_requested_length():
    rng = random.Random(0)
    for n_pairs in [0, 1, 2, 5, 16, 40]:
        for _ in range(50):
            word = dyck_word(n_pairs, rng)
            assert len(word) == 2 * n_pairs and is_balanced(word)


def test_dyck_words_are_uniform():
    rng = random.Random(1)
    counts = Counter(dyck_word(3, rng) for _ in range(5000))
    assert len(counts) == 5  # the Catalan number C_3
    assert all(abs(c / 5000 - 0.2) < 0.03 for c in counts.values())


def test_brackets_generate_balanced_strings_with_the_mixture_of_lengths():
    task = BracketsTask()
    examples = [e for seed in range(10) for e in task.generate(200, seed=seed)]
    strings = [task.vocab.decode(e.answer) for e in examples]
    assert all(is_balanced(s) and len(s) in task.lengths for s in strings)
    empirical = empirical_distribution(len(s) for s in strings)
    assert total_variation(task.length_distribution(), empirical) < 0.03


def test_brackets_two_types_uses_both_and_checks_the_type():
    task = BracketsTask(types=2)
    text = "".join(s for e in task.generate(50, seed=0) for s in task.vocab.decode(e.answer))
    assert {"(", ")", "[", "]"} <= set(text)
    ex = Example([], task.vocab.encode(list("([])")))
    assert score(task, ex, list("([])"))["correct"] == 1.0
    assert score(task, ex, list("([)]"))["correct"] == 0.0
    assert score(task, ex, list("(]"))["correct"] == 0.0


def test_brackets_check_rejects_unbalanced_strings():
    task = BracketsTask()
    ex = Example([], task.vocab.encode(list("(())")))
    for bad in ["(()", ")(", "())(", "((((", ""]:
        assert score(task, ex, list(bad))["correct"] == 0.0, bad
    assert score(task, ex, list("()()()"))["length_in_support"] == 0.0  # length 6 is not in the mixture


def test_total_variation_and_mixture_normalisation():
    assert total_variation({1: 0.5, 2: 0.5}, {1: 1.0}) == 0.5
    assert total_variation({1: 1.0}, {2: 1.0}) == 1.0
    assert total_variation({4: 0.25, 8: 0.75}, {8: 0.75, 4: 0.25}) == 0.0
    assert BracketsTask(lengths={2: 1, 4: 3}).length_distribution() == {2: 0.25, 4: 0.75}


# ---------------------------------------------------------------- reachability


def reach_example(task, edges: list[tuple[int, int]], source: int, target: int) -> Example:
    tokens = [f"v{v}" for edge in edges for v in edge]
    return example(task, [*tokens, "?", f"v{source}", f"v{target}", "="], ["none"])


def test_reachability_check_on_a_hand_built_graph():
    task = get_task("reachability", n_nodes=4)
    ex = reach_example(task, [(0, 1), (1, 2), (1, 0)], 0, 2)
    assert score(task, ex, ["v0", "v1", "v2"]) == {"correct": 1, "shortest": 1, "decision": 1}
    assert score(task, ex, ["v0", "v1", "v0", "v1", "v2"])["shortest"] == 0  # a walk: correct, not shortest
    assert score(task, ex, ["v0", "v1", "v0", "v1", "v2"])["correct"] == 1
    assert score(task, ex, ["v0", "v2"])["correct"] == 0  # no edge 0 -> 2
    assert score(task, ex, ["v0", "v1"])["correct"] == 0  # stops short of the target
    assert score(task, ex, ["none"]) == {"correct": 0, "shortest": 0, "decision": 0}
    backwards = reach_example(task, [(0, 1), (1, 2)], 2, 0)
    assert score(task, backwards, ["none"])["correct"] == 1
    assert score(task, backwards, ["v2", "v1", "v0"])["correct"] == 0  # edges are directed


def test_reachability_undirected_edges_go_both_ways():
    task = get_task("reachability", n_nodes=4, directed=False)
    ex = reach_example(task, [(0, 1), (1, 2)], 2, 0)
    assert score(task, ex, ["v2", "v1", "v0"])["correct"] == 1
    assert score(task, ex, ["none"])["correct"] == 0


def test_reachability_none_exactly_when_unreachable_by_transitive_closure():
    task = get_task("reachability")
    examples = task.generate(200, seed=0)
    for e in examples:
        reach = np.eye(task.n_nodes, dtype=bool)
        for u, w in e.meta["edges"]:
            reach[u, w] = True
        for k in range(task.n_nodes):  # Warshall
            reach |= reach[:, [k]] & reach[[k], :]
        said_none = task.vocab.decode(e.answer) == ["none"]
        assert said_none == (not reach[e.meta["source"], e.meta["target"]])
    reachable = sum(e.meta["reachable"] for e in examples) / len(examples)
    assert 0.35 < reachable < 0.65


# ---------------------------------------------------------------- subset sum


def test_subset_sum_accepts_any_valid_subset_and_rejects_wrong_ones():
    task = get_task("subset_sum")
    ex = example(task, ["3", "5", "2", "2", "=", "7"], ["5", "2"])
    assert score(task, ex, ["2", "5"]) == {"correct": 1.0, "decision": 1.0}  # any order
    assert score(task, ex, ["3", "2", "2"])["correct"] == 1.0  # another subset, both 2s used
    assert score(task, ex, ["3", "5"])["correct"] == 0.0  # wrong sum
    assert score(task, ex, ["7"])["correct"] == 0.0  # 7 is not an item
    assert score(task, ex, ["3", "2", "2", "0"])["correct"] == 0.0  # 0 is not an item
    assert score(task, ex, ["none"]) == {"correct": 0.0, "decision": 0.0}
    infeasible = example(task, ["2", "4", "=", "3"], ["none"])
    assert score(task, infeasible, ["none"]) == {"correct": 1.0, "decision": 1.0}
    assert score(task, infeasible, ["2"])["correct"] == 0.0
    one_two = example(task, ["2", "3", "4", "=", "4"], ["4"])
    assert score(task, one_two, ["2", "2"])["correct"] == 0.0  # the right sum, but uses the single 2 twice


def test_subset_sum_references_agree_with_brute_force():
    task = get_task("subset_sum")
    examples = task.generate(100, seed=0)
    for e in examples:
        items, target = e.meta["items"], e.meta["target"]
        feasible = any(
            sum(x for i, x in enumerate(items) if mask >> i & 1) == target
            for mask in range(1, 2 ** len(items))
        )
        assert (task.vocab.decode(e.answer) == ["none"]) == (not feasible)
    feasible_share = sum(task.vocab.decode(e.answer) != ["none"] for e in examples) / len(examples)
    assert 0.35 < feasible_share < 0.8


# ---------------------------------------------------------------- sudoku

GRID = [1, 2, 3, 4, 3, 4, 1, 2, 2, 1, 4, 3, 4, 3, 2, 1]
# the same grid with its two middle columns swapped: rows and columns still hold 1-4, the boxes do not
LATIN = [1, 3, 2, 4, 3, 1, 4, 2, 2, 4, 1, 3, 4, 2, 3, 1]


def test_sudoku_solver_counts_all_288_grids():
    assert count_solutions([0] * 16, limit=None) == 288
    assert is_solved(GRID) and not is_solved(LATIN)


def test_every_sudoku_puzzle_has_exactly_one_solution():
    task = SudokuTask(min_blanks=6, max_blanks=12)
    for e in task.generate(60, seed=0):
        puzzle = e.meta["puzzle"]
        assert count_solutions(puzzle, limit=None) == 1
        assert solve(puzzle)[0] == e.meta["solution"] and is_solved(e.meta["solution"])
        assert all(p in (0, s) for p, s in zip(puzzle, e.meta["solution"]))


def test_sudoku_check_rejects_a_box_violation_and_wrong_digits():
    task = SudokuTask()
    blanks = [i for i in range(16) if i % 4 in (1, 2)]  # the middle columns; the givens force GRID
    ex = example(
        task, ["_" if i in blanks else str(d) for i, d in enumerate(GRID)], [str(GRID[i]) for i in blanks]
    )
    assert count_solutions(task.parse_prompt(ex.prompt), limit=None) == 1
    assert score(task, ex, [str(GRID[i]) for i in blanks]) == {"correct": 1.0, "cell_accuracy": 1.0}
    box_violation = score(task, ex, [str(LATIN[i]) for i in blanks])
    assert box_violation == {"correct": 0.0, "cell_accuracy": 0.0}
    swapped = [str(GRID[i]) for i in blanks]
    swapped[0], swapped[1] = swapped[1], swapped[0]
    assert score(task, ex, swapped) == {"correct": 0.0, "cell_accuracy": pytest.approx(6 / 8)}
    assert score(task, ex, [str(GRID[i]) for i in blanks][:-1])["correct"] == 0.0  # one digit short


def test_sudoku_render_shows_the_grid():
    task = SudokuTask()
    (ex,) = task.generate(1, seed=0)
    lines = task.render(ex).splitlines()
    assert len(lines) == 5 and "_" not in "".join(lines)
    assert "_" in task.render(ex, answer=[])


# ---------------------------------------------------------------- bigram


def binary_entropy(p: float) -> float:
    return -p * math.log(p) - (1 - p) * math.log(1 - p)


def test_entropy_rate_of_a_two_state_chain_matches_the_hand_computation():
    from minidiff.data.tasks.bigram import chain_entropy_rate, stationary_distribution

    # P(0 -> 1) = 1/2, P(1 -> 0) = 1/4: mu = (1/3, 2/3), H = 1/3 h(1/2) + 2/3 h(1/4)
    transition = np.array([[0.5, 0.5], [0.25, 0.75]])
    assert np.allclose(stationary_distribution(transition), [1 / 3, 2 / 3])
    expected = math.log(2) / 3 + 2 / 3 * (0.25 * math.log(4) + 0.75 * math.log(4 / 3))
    assert chain_entropy_rate(transition) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.605939, abs=1e-6)
    # a deterministic two-cycle has no entropy; the stop decision adds h(q) per token
    cycle = get_task("bigram", n_symbols=2, successors=1, stop_prob=0.2)
    assert cycle.entropy_rate() == pytest.approx(0.0, abs=1e-12)
    assert cycle.entropy_rate(include_stop=True) == pytest.approx(binary_entropy(0.2))


def test_entropy_rate_matches_a_monte_carlo_estimate():
    task = get_task("bigram", n_symbols=6, successors=3, language_seed=3)
    rng = np.random.default_rng(0)
    cumulative = task.transition.cumsum(axis=1)
    state, nll, steps = 0, 0.0, 100_000
    for u in rng.random(steps):
        nxt = min(int(np.searchsorted(cumulative[state], u, side="right")), task.n_symbols - 1)
        nll -= math.log(task.transition[state, nxt])
        state = nxt
    assert nll / steps == pytest.approx(task.entropy_rate(), abs=0.02)


def test_bigram_language_is_sparse_and_seeded_separately_from_generate():
    task = get_task("bigram", n_symbols=8, successors=3)
    assert ((task.transition > 0).sum(axis=1) == 3).all() and np.allclose(task.transition.sum(axis=1), 1)
    assert np.allclose(task.initial @ task.transition, task.initial)
    same, other = get_task("bigram", language_seed=0), get_task("bigram", language_seed=1)
    assert np.array_equal(task.transition, same.transition) and not np.array_equal(
        task.transition, other.transition
    )
    assert [e.answer for e in other.generate(10, seed=0)] != [e.answer for e in task.generate(10, seed=0)]


def test_bigram_log_likelihood_sums_to_one_over_all_sentences():
    task = get_task("bigram", n_symbols=3, successors=2, max_length=4)
    first = task.vocab.n_specials
    sentences = [[]]
    total = 0.0
    for _ in range(4):
        sentences = [s + [first + x] for s in sentences for x in range(3)]
        total += sum(math.exp(task.log_likelihood(s)) for s in sentences)
    assert total == pytest.approx(1.0, abs=1e-12)
    assert task.log_likelihood([first] * 5) == -math.inf  # longer than max_length


def test_bigram_check_rejects_an_impossible_transition():
    task = get_task("bigram")
    a, b = map(int, np.argwhere(task.transition == 0)[0])
    c = int(np.argmax(task.transition[a]))
    ex = Example([], [4 + a, 4 + c])
    assert task.check(ex, [4 + a, 4 + c]) == {"correct": 1.0, "valid_transitions": 1.0}
    assert task.check(ex, [4 + a, 4 + b]) == {"correct": 0.0, "valid_transitions": 0.0}
    assert task.check(ex, [4 + c, 4 + a, 4 + b])["valid_transitions"] == pytest.approx(
        float(task.transition[c, a] > 0) / 2
    )
    assert task.log_likelihood([4 + a, 4 + b]) == -math.inf
    assert task.nll_per_token([[4 + a, 4 + c]]) == pytest.approx(-task.log_likelihood([4 + a, 4 + c]) / 2)


def test_bigram_samples_follow_the_model():
    task = get_task("bigram", stop_prob=0.25, max_length=12)
    examples = task.generate(3000, seed=0)
    lengths = empirical_distribution(len(e.answer) for e in examples)
    q, norm = 0.25, 1 - 0.75**12
    expected = {n: 0.75 ** (n - 1) * q / norm for n in range(1, 13)}
    assert total_variation(lengths, expected) < 0.04
    nll = task.nll_per_token([e.answer for e in examples])
    mean_length = sum(n * p for n, p in expected.items())
    stationary_h = float(-(task.initial * np.log(task.initial)).sum())
    # E[-log p(x)] = H(mu) + (E[L] - 1) H + E[-log p(L)], all per token
    expected_nll = (stationary_h + (mean_length - 1) * task.entropy_rate()) / mean_length
    length_nll = -sum(p * math.log(p) for p in expected.values()) / mean_length
    assert nll == pytest.approx(expected_nll + length_nll, abs=0.05)
