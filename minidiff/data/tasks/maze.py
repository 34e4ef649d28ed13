"""Maze navigation: write a path of cells from a start cell to a goal cell of a random grid maze.

The maze is carved by a randomized depth-first search (the "recursive backtracker") on an odd-sized grid:
rooms sit at even ``(row, col)``, the cells between two rooms are walls until the search passes from one room
to the other and knocks the wall down. The open cells then form a spanning tree of the rooms (a *perfect*
maze, with one simple path between any two cells). ``loop_fraction`` knocks down that fraction of the
remaining walls between rooms as well, which creates cycles, so that a correct path need not be a shortest
one.

Tokens: ``#`` wall, ``.`` open, ``=`` separator, and one token per cell, ``c{row * width + col}``. Layout::

    prompt = the grid row by row (height * width tokens of # and .), c_start, c_goal, =
    answer = a shortest path as cell tokens, start and goal included (its length varies with the maze)

What it measures: planning on a 2-D structure that the model sees as a flat sequence -- every step of the
answer must be a legal move, and the whole path must connect two given cells. The module-level helpers
(``carve_maze``, ``shortest_path``, ``is_valid_path``, ``cell_symbol``) are shared with goal-conditioned maze
variants.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Sequence

from minidiff.data.tasks.base import Example, Task, check_n, register
from minidiff.data.vocab import Vocab

__all__ = [
    "MazeTask",
    "carve_maze",
    "shortest_path",
    "is_valid_path",
    "is_move",
    "cell_id",
    "cell_from_id",
    "cell_symbol",
    "cell_symbols",
]

Cell = tuple[int, int]  # (row, col)
Grid = Sequence[Sequence[bool]]  # grid[row][col] is True where the cell is open
WALL, OPEN, SEP = "#", ".", "="


def cell_id(cell: Cell, width: int) -> int:
    return cell[0] * width + cell[1]


def cell_from_id(index: int, width: int) -> Cell:
    return divmod(index, width)


def cell_symbol(cell: Cell, width: int) -> str:
    """The token of a cell, ``c{row * width + col}``."""
    return f"c{cell_id(cell, width)}"


def cell_symbols(height: int, width: int) -> list[str]:
    """Tokens of every cell of a ``height x width`` grid, in row-major order."""
    return [f"c{i}" for i in range(height * width)]


def carve_maze(height: int, width: int, rng: random.Random, loop_fraction: float = 0.0) -> list[list[bool]]:
    """A maze on an odd ``height x width`` grid (True = open), carved by randomized depth-first search."""
    grid = [[False] * width for _ in range(height)]
    grid[0][0] = True
    stack: list[Cell] = [(0, 0)]
    while stack:
        r, c = stack[-1]
        unvisited = [
            (r + dr, c + dc)
            for dr, dc in ((-2, 0), (2, 0), (0, -2), (0, 2))
            if 0 <= r + dr < height and 0 <= c + dc < width and not grid[r + dr][c + dc]
        ]
        if not unvisited:
            stack.pop()
            continue
        nr, nc = rng.choice(unvisited)
        grid[(r + nr) // 2][(c + nc) // 2] = grid[nr][nc] = True
        stack.append((nr, nc))
    # walls between two rooms: exactly one coordinate odd
    walls = [(r, c) for r in range(height) for c in range(width) if (r + c) % 2 == 1 and not grid[r][c]]
    for r, c in rng.sample(walls, round(loop_fraction * len(walls))):
        grid[r][c] = True
    return grid


def _is_open(grid: Grid, cell: Cell) -> bool:
    r, c = cell
    return 0 <= r < len(grid) and 0 <= c < len(grid[0]) and bool(grid[r][c])


def is_move(grid: Grid, a: Cell, b: Cell) -> bool:
    """Whether stepping from ``a`` to ``b`` is legal: both open and 4-adjacent."""
    return abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1 and _is_open(grid, a) and _is_open(grid, b)


def is_valid_path(grid: Grid, path: Sequence[Cell]) -> bool:
    """Whether ``path`` is a non-empty walk through open cells, each step 4-adjacent (revisits allowed)."""
    if not path or not _is_open(grid, path[0]):
        return False
    return all(is_move(grid, a, b) for a, b in zip(path, path[1:]))


def shortest_path(grid: Grid, a: Cell, b: Cell) -> list[Cell] | None:
    """A shortest path from ``a`` to ``b`` (both included) by breadth-first search, or ``None``."""
    if not (_is_open(grid, a) and _is_open(grid, b)):
        return None
    parent: dict[Cell, Cell | None] = {a: None}
    queue = deque([a])
    while queue:
        cell = queue.popleft()
        if cell == b:
            path = [cell]
            while parent[path[-1]] is not None:
                path.append(parent[path[-1]])
            return path[::-1]
        for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            nxt = (cell[0] + dr, cell[1] + dc)
            if nxt not in parent and _is_open(grid, nxt):
                parent[nxt] = cell
                queue.append(nxt)
    return None


@register("maze")
class MazeTask(Task):
    """Start-to-goal maze paths; ``check`` gives ``correct``, ``shortest`` and ``valid_moves``."""

    def __init__(self, height: int = 7, width: int = 7, loop_fraction: float = 0.0) -> None:
        for name, value in (("height", height), ("width", width)):
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or not 3 <= value <= 31
                or value % 2 == 0
            ):
                raise ValueError(f"{name} must be an odd int in [3, 31], got {value!r}")
        if not 0.0 <= loop_fraction <= 1.0:
            raise ValueError(f"loop_fraction must lie in [0, 1], got {loop_fraction!r}")
        self.height, self.width, self.loop_fraction = height, width, loop_fraction
        self.vocab = Vocab([WALL, OPEN, SEP, *cell_symbols(height, width)])
        self._first_cell = self.vocab.index["c0"]

    def _cell(self, token: int) -> Cell | None:
        index = int(token) - self._first_cell
        return cell_from_id(index, self.width) if 0 <= index < self.height * self.width else None

    def generate(self, n: int, seed: int) -> list[Example]:
        check_n(n)
        rng = random.Random(seed)
        rooms = [(r, c) for r in range(0, self.height, 2) for c in range(0, self.width, 2)]
        examples = []
        for _ in range(n):
            grid = carve_maze(self.height, self.width, rng, self.loop_fraction)
            start, goal = rng.sample(rooms, 2)
            path = shortest_path(grid, start, goal)
            cells = [OPEN if open_ else WALL for row in grid for open_ in row]
            ends = [cell_symbol(start, self.width), cell_symbol(goal, self.width)]
            prompt = self.vocab.encode([*cells, *ends, SEP])
            answer = self.vocab.encode([cell_symbol(cell, self.width) for cell in path])
            examples.append(Example(prompt, answer, {"grid": grid, "start": start, "goal": goal}))
        return examples

    def parse_prompt(self, prompt: Sequence[int]) -> tuple[list[list[bool]], Cell, Cell]:
        """The grid, start and goal encoded in a prompt."""
        size = self.height * self.width
        flat = [self.vocab.symbols[t] == OPEN for t in prompt[:size]]
        grid = [flat[r * self.width : (r + 1) * self.width] for r in range(self.height)]
        return grid, self._cell(prompt[size]), self._cell(prompt[size + 1])

    def check(self, example: Example, answer: Sequence[int]) -> dict[str, float]:
        grid, start, goal = self.parse_prompt(example.prompt)
        cells = [self._cell(t) for t in answer]
        steps = list(zip(cells, cells[1:]))
        legal = sum(a is not None and b is not None and is_move(grid, a, b) for a, b in steps)
        correct = None not in cells and is_valid_path(grid, cells) and cells[0] == start and cells[-1] == goal
        shortest = correct and len(cells) == len(shortest_path(grid, start, goal))
        return {
            "correct": float(correct),
            "shortest": float(shortest),
            "valid_moves": legal / len(steps) if steps else 0.0,
        }

    def render(self, example: Example, answer: Sequence[int] | None = None) -> str:
        """The grid: ``#`` walls, ``S``/``G`` the ends, ``*`` the path (``X`` where it enters a wall)."""
        grid, start, goal = self.parse_prompt(example.prompt)
        rows = [["." if open_ else "#" for open_ in row] for row in grid]
        for cell in filter(None, map(self._cell, example.answer if answer is None else answer)):
            rows[cell[0]][cell[1]] = "*" if grid[cell[0]][cell[1]] else "X"
        rows[start[0]][start[1]], rows[goal[0]][goal[1]] = "S", "G"
        return "\n".join(" ".join(row) for row in rows)
