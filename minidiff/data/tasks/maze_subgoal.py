"""Subgoal-conditioned maze planning on one fixed maze: FlexMDM's headline benchmark.

Kim et al., 2025, "Any-Order Flexible Length Masked Diffusion", arXiv 2509.01025 (Table 1, "subgoal-style maze
planning"; the set-up follows the public rebuild ``dhruvdcoder/xlm-core``, since the paper ships no maze code).

**One maze per task instance.** The maze is drawn once, deterministically from ``maze_seed``, by *recursive
division*: start from an open ``size x size`` grid (``size`` odd; rooms at even ``(row, col)``), split the current
chamber by a wall along an odd row or column with a single door at an even position, and recurse into both halves
until a chamber is one room wide. Every division adds one door between two chambers, so the open cells form a tree
(a *perfect* maze: one simple path between any two cells). The model **never sees the maze**: it must learn the
corridors from the paths in the training data.

**An example.** ``k`` distinct open cells are drawn (``min_subgoals <= k <= max_subgoals``); the path joins them in
order by breadth-first shortest segments (one token per cell, the subgoals included, segments glued at the shared
subgoal). Examples whose path is longer than ``max_path`` are redrawn. Tokens are the cells, ``c{row * size + col}``
(wall cells are in the vocabulary too: a model that writes one has walked into a wall). Layout::

    prompt = the subgoals in order, s_1 ... s_k  (s_1 the start, s_k the goal)
    answer = the path, s_1 ... s_k among its cells; meta["subgoal_pos"] are the subgoals' indices in it

Two model inputs are built from it (:meth:`MazeSubgoalTask.anchored`): a fixed-length MDM reads the usual
``[BOS] prompt answer [PAD ...]`` batch; FlexMDM reads the answer alone with the subgoal tokens as *anchors* at
their positions (never deleted, never masked) and generates by inserting the segments between them.

**Success** (:meth:`MazeSubgoalTask.check`, ``correct``): every cell is open, every step goes to a 4-neighbour, the
path starts at the first subgoal, ends at the last, and visits the subgoals in order (as a subsequence). Revisits
are allowed (joined shortest segments can backtrack). The parts are reported as well: ``valid_cells``,
``valid_moves`` (fractions), ``subgoals_in_order`` and ``reaches_goal``.

Tiers (:meth:`MazeSubgoalTask.tier`) are sized for CPU training. The rebuild's tiers are 21x21 / 31x31 / 41x41
grids with 2-4 / 3-8 / 4-12 subgoals and paths <= 128 / 256 / 400 (its own choices; the paper's are not
published); ours keep the three knobs (grid, subgoal count, path cap) at toy scale.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence

import torch

from minidiff.data.tasks.base import Batch, Example, Task, check_n, register
from minidiff.data.tasks.maze import (
    cell_from_id,
    cell_symbol,
    cell_symbols,
    is_move,
)
from minidiff.data.vocab import Vocab

__all__ = ["MazeSubgoalTask", "TIERS", "divide_maze", "join_subgoals", "visits_in_order"]

Cell = tuple[int, int]

#: tier name -> constructor arguments (grid size, subgoal count range, path cap)
TIERS: dict[str, dict] = {
    "easy": {"size": 9, "min_subgoals": 2, "max_subgoals": 3, "max_path": 32},
    "medium": {"size": 13, "min_subgoals": 3, "max_subgoals": 4, "max_path": 48},
    "hard": {"size": 17, "min_subgoals": 3, "max_subgoals": 5, "max_path": 64},
}


def divide_maze(size: int, rng: random.Random) -> list[list[bool]]:
    """A perfect maze on an odd ``size x size`` grid (True = open) by recursive division; rooms at even cells."""
    grid = [[True] * size for _ in range(size)]
    chambers = [(0, size - 1, 0, size - 1)]  # (top, bottom, left, right), inclusive, all even
    while chambers:
        top, bottom, left, right = chambers.pop()
        rooms_high, rooms_wide = (bottom - top) // 2 + 1, (right - left) // 2 + 1
        if rooms_high < 2 or rooms_wide < 2:
            continue  # a corridor: nothing left to divide
        horizontal = rooms_high > rooms_wide or (rooms_high == rooms_wide and rng.random() < 0.5)
        if horizontal:
            row = rng.randrange(top + 1, bottom, 2)
            door = rng.randrange(left, right + 1, 2)
            for col in range(left, right + 1):
                grid[row][col] = col == door
            chambers += [(top, row - 1, left, right), (row + 1, bottom, left, right)]
        else:
            col = rng.randrange(left + 1, right, 2)
            door = rng.randrange(top, bottom + 1, 2)
            for row in range(top, bottom + 1):
                grid[row][col] = row == door
            chambers += [(top, bottom, left, col - 1), (top, bottom, col + 1, right)]
    return grid


def _bfs_parents(grid, source: Cell) -> dict[Cell, Cell | None]:
    """Breadth-first search tree from ``source``: parent of every reachable open cell."""
    parent: dict[Cell, Cell | None] = {source: None}
    queue = deque([source])
    while queue:
        r, c = queue.popleft()
        for nxt in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if (
                nxt not in parent
                and 0 <= nxt[0] < len(grid)
                and 0 <= nxt[1] < len(grid[0])
                and grid[nxt[0]][nxt[1]]
            ):
                parent[nxt] = (r, c)
                queue.append(nxt)
    return parent


def join_subgoals(grid, subgoals: Sequence[Cell], cache: dict | None = None) -> tuple[list[Cell], list[int]]:
    """The path through ``subgoals`` in order (shortest segments glued at the subgoals) and their indices in it.

    Segments are read off a breadth-first tree from each segment's end (:func:`~minidiff.data.tasks.maze.
    shortest_path` gives the same lengths); ``cache`` (a dict reused across calls on the same grid) keeps the trees.
    """
    if len(subgoals) < 2:
        raise ValueError(f"subgoals must list at least two cells, got {len(subgoals)}")
    cache = {} if cache is None else cache
    path, positions = [subgoals[0]], [0]
    for a, b in zip(subgoals, subgoals[1:]):
        if b not in cache:
            cache[b] = _bfs_parents(grid, b)
        if a not in cache[b]:
            raise ValueError(f"no path from {a} to {b} in this maze")
        cell = a
        while cell != b:  # walk the tree rooted at b: a shortest path from a to b
            cell = cache[b][cell]
            path.append(cell)
        positions.append(len(path) - 1)
    return path, positions


def visits_in_order(path: Sequence[Cell], subgoals: Sequence[Cell]) -> bool:
    """Whether ``subgoals`` occur in ``path`` as a subsequence (in order, other cells allowed between them)."""
    i = 0
    for cell in path:
        if i < len(subgoals) and cell == subgoals[i]:
            i += 1
    return i == len(subgoals)


def _check_int(name: str, value, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


@register("maze_subgoal")
class MazeSubgoalTask(Task):
    """Paths through ordered subgoals of one fixed maze; see the module docstring."""

    def __init__(
        self,
        size: int = 9,
        min_subgoals: int = 2,
        max_subgoals: int = 3,
        max_path: int = 32,
        maze_seed: int = 0,
    ) -> None:
        if not isinstance(size, int) or isinstance(size, bool) or not 5 <= size <= 41 or size % 2 == 0:
            raise ValueError(f"size must be an odd int in [5, 41], got {size!r}")
        _check_int("min_subgoals", min_subgoals, 2)
        _check_int("max_subgoals", max_subgoals, min_subgoals)
        _check_int("max_path", max_path, 2)
        _check_int("maze_seed", maze_seed, 0)
        self.size, self.max_path, self.maze_seed = size, max_path, maze_seed
        self.min_subgoals, self.max_subgoals = min_subgoals, max_subgoals
        self.grid = divide_maze(size, random.Random(maze_seed))
        self.open_cells = [(r, c) for r in range(size) for c in range(size) if self.grid[r][c]]
        self.vocab = Vocab(cell_symbols(size, size))
        self._trees: dict = {}  # breadth-first trees of this maze, by root, filled on demand
        self._first_cell = self.vocab.index["c0"]

    @classmethod
    def tier(cls, name: str, *, maze_seed: int = 0) -> MazeSubgoalTask:
        """A preset: ``"easy"`` (9x9, 2-3 subgoals, path <= 32), ``"medium"`` (13x13, 3-4, <= 48) or ``"hard"``
        (17x17, 3-5, <= 64)."""
        if name not in TIERS:
            raise ValueError(f"tier must be one of {list(TIERS)}, got {name!r}")
        return cls(**TIERS[name], maze_seed=maze_seed)

    def __repr__(self) -> str:
        return (
            f"MazeSubgoalTask(size={self.size}, subgoals={self.min_subgoals}-{self.max_subgoals}, "
            f"max_path={self.max_path}, maze_seed={self.maze_seed})"
        )

    # ------------------------------------------------------------------------------------------ tokens
    def token(self, cell: Cell) -> int:
        return self.vocab.index[cell_symbol(cell, self.size)]

    def cell(self, token: int) -> Cell | None:
        """The cell of a token id, or ``None`` for a special or out-of-range id."""
        index = int(token) - self._first_cell
        return cell_from_id(index, self.size) if 0 <= index < self.size * self.size else None

    # ------------------------------------------------------------------------------------------ data
    def generate(self, n: int, seed: int) -> list[Example]:
        check_n(n)
        rng = random.Random(seed)
        examples = []
        while len(examples) < n:
            k = rng.randint(self.min_subgoals, self.max_subgoals)
            subgoals = rng.sample(self.open_cells, k)
            path, positions = join_subgoals(self.grid, subgoals, self._trees)
            if len(path) > self.max_path:
                continue
            prompt = [self.token(c) for c in subgoals]
            answer = [self.token(c) for c in path]
            examples.append(Example(prompt, answer, {"subgoals": subgoals, "subgoal_pos": positions}))
        return examples

    def anchored(self, examples: Sequence[Example], length: int | None = None) -> Batch:
        """FlexMDM's input: the paths left-packed ``[N, length]`` with a PAD tail (default ``length``: ``max_path``),
        as a :class:`~minidiff.data.Batch` whose ``prompt_mask`` marks the subgoal positions (the anchors) and
        ``answer_mask`` the other cells; ``prompt_lengths`` counts the anchors. No BOS, no EOS."""
        length = self.max_path if length is None else length
        tokens = torch.full((len(examples), length), self.vocab.pad_id, dtype=torch.long)
        anchors = torch.zeros(len(examples), length, dtype=torch.bool)
        for i, e in enumerate(examples):
            if len(e.answer) > length:
                raise ValueError(f"length={length} is shorter than a path of {len(e.answer)} cells")
            tokens[i, : len(e.answer)] = torch.tensor(e.answer)
            anchors[i, e.meta["subgoal_pos"]] = True
        valid = tokens != self.vocab.pad_id
        return Batch(tokens, anchors, valid & ~anchors, valid, anchors.sum(1))

    def anchor_prompts(self, examples: Sequence[Example]) -> tuple[torch.Tensor, ...]:
        """FlexMDM's starting state: ``(tokens, anchors)``, the subgoals alone, left-packed, all anchors."""
        width = max(len(e.prompt) for e in examples)
        tokens = torch.full((len(examples), width), self.vocab.pad_id, dtype=torch.long)
        for i, e in enumerate(examples):
            tokens[i, : len(e.prompt)] = torch.tensor(e.prompt)
        return tokens, tokens != self.vocab.pad_id

    # ------------------------------------------------------------------------------------------ evaluation
    def check(self, example: Example, answer: Sequence[int]) -> dict[str, float]:
        subgoals = [self.cell(t) for t in example.prompt]
        cells = [self.cell(t) for t in answer]
        on_grid = [c for c in cells if c is not None]
        valid_cells = sum(self.grid[r][c] for r, c in on_grid) / len(cells) if cells else 0.0
        steps = list(zip(cells, cells[1:]))
        legal = sum(a is not None and b is not None and is_move(self.grid, a, b) for a, b in steps)
        valid_moves = legal / len(steps) if steps else 0.0
        in_order = bool(cells) and visits_in_order(cells, subgoals)
        ends = bool(cells) and cells[0] == subgoals[0] and cells[-1] == subgoals[-1]
        correct = valid_cells == 1.0 and (not steps or legal == len(steps)) and in_order and ends
        return {
            "correct": float(correct and len(cells) >= 2),
            "valid_cells": float(valid_cells),
            "valid_moves": float(valid_moves),
            "subgoals_in_order": float(in_order),
            "reaches_goal": float(bool(cells) and cells[-1] == subgoals[-1]),
        }

    def render(self, example: Example, answer: Sequence[int] | None = None) -> str:
        """The maze: ``#`` walls, ``1 2 ...`` the subgoals, ``*`` the path (``X`` where it enters a wall)."""
        rows = [["." if open_ else "#" for open_ in row] for row in self.grid]
        for cell in filter(None, map(self.cell, example.answer if answer is None else answer)):
            rows[cell[0]][cell[1]] = "*" if self.grid[cell[0]][cell[1]] else "X"
        for i, token in enumerate(example.prompt):
            r, c = self.cell(token)
            rows[r][c] = str((i + 1) % 10)
        return "\n".join(" ".join(row) for row in rows)
