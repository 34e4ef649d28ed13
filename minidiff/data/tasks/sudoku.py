"""4x4 Sudoku: fill the blank cells so that every row, column and 2x2 box holds the digits 1-4 once.

The solved grid is drawn uniformly from all 288 valid 4x4 grids (enumerated once per task by the backtracking
solver below; shuffling one base grid by the validity-preserving permutations would reach only 96 of them, one
of the two equivalence classes). Cells are then blanked in random order, each removal kept only if the puzzle
still has exactly one solution, until the drawn number of blanks (uniform in ``[min_blanks, max_blanks]``) is
reached or no further cell can go, so every puzzle has a unique solution.

Tokens: ``1``-``4`` and ``_`` (blank). Layout::

    prompt = the 16 cells row by row, blanks as _
    answer = the digits of the blank cells in row-major order (as many tokens as blanks)

What it measures: constraint satisfaction, where each answer token depends on cells anywhere in the grid.
``correct`` means the filled grid is a valid Sudoku (it then equals the unique solution, since the givens are
kept); ``cell_accuracy`` is the fraction of blanks filled with the solution's digit.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from minidiff.data.tasks.base import Example, Task, check_n, register
from minidiff.data.vocab import Vocab

__all__ = ["SudokuTask", "solve", "count_solutions", "is_solved", "UNITS"]

SIZE, BOX, BLANK = 4, 2, "_"
# the 12 units (rows, columns, boxes) as lists of cell indices 0..15
UNITS = (
    [[r * SIZE + c for c in range(SIZE)] for r in range(SIZE)]
    + [[r * SIZE + c for r in range(SIZE)] for c in range(SIZE)]
    + [
        [(br + r) * SIZE + bc + c for r in range(BOX) for c in range(BOX)]
        for br in range(0, SIZE, BOX)
        for bc in range(0, SIZE, BOX)
    ]
)
_PEERS = [sorted({j for unit in UNITS if i in unit for j in unit} - {i}) for i in range(SIZE * SIZE)]


def solve(grid: Sequence[int], limit: int | None = None) -> list[list[int]]:
    """Up to ``limit`` solutions (all if ``None``) of 16 digits with 0 for blank, by backtracking."""
    grid, solutions = list(grid), []

    def search() -> bool:  # True once enough solutions are found
        if 0 not in grid:
            solutions.append(list(grid))
            return limit is not None and len(solutions) >= limit
        cell = grid.index(0)
        for digit in range(1, SIZE + 1):
            if all(grid[peer] != digit for peer in _PEERS[cell]):
                grid[cell] = digit
                if search():
                    return True
                grid[cell] = 0
        return False

    search()
    return solutions


def count_solutions(grid: Sequence[int], limit: int = 2) -> int:
    """The number of solutions, counted up to ``limit`` (2 is enough to test uniqueness)."""
    return len(solve(grid, limit))


def is_solved(grid: Sequence[int]) -> bool:
    """Whether every row, column and box holds the digits 1..4 exactly once."""
    return all(sorted(grid[i] for i in unit) == list(range(1, SIZE + 1)) for unit in UNITS)


@register("sudoku")
class SudokuTask(Task):
    """4x4 Sudoku with a unique solution; ``check`` gives ``correct`` and ``cell_accuracy``."""

    def __init__(self, min_blanks: int = 4, max_blanks: int = 10) -> None:
        if not isinstance(max_blanks, int) or isinstance(max_blanks, bool) or not 1 <= max_blanks <= 12:
            raise ValueError(f"max_blanks must be an int in [1, 12], got {max_blanks!r}")
        if (
            not isinstance(min_blanks, int)
            or isinstance(min_blanks, bool)
            or not 1 <= min_blanks <= max_blanks
        ):
            raise ValueError(f"min_blanks must be an int in [1, max_blanks={max_blanks}], got {min_blanks!r}")
        self.min_blanks, self.max_blanks = min_blanks, max_blanks
        self.vocab = Vocab([*(str(d) for d in range(1, SIZE + 1)), BLANK])
        self._grids = solve([0] * SIZE * SIZE)  # all 288 solved grids

    def _digit(self, token: int) -> int | None:
        digit = int(token) - self.vocab.n_specials + 1
        return digit if 1 <= digit <= SIZE else None

    def make_puzzle(self, rng: random.Random) -> tuple[list[int], list[int]]:
        """A (puzzle, solution) pair; the puzzle has 0 for blanks and exactly one solution."""
        solution = rng.choice(self._grids)
        puzzle, n_blanks = list(solution), rng.randint(self.min_blanks, self.max_blanks)
        for cell in rng.sample(range(SIZE * SIZE), SIZE * SIZE):
            if puzzle.count(0) == n_blanks:
                break
            puzzle[cell] = 0
            if count_solutions(puzzle) != 1:
                puzzle[cell] = solution[cell]
        return puzzle, list(solution)

    def generate(self, n: int, seed: int) -> list[Example]:
        check_n(n)
        rng = random.Random(seed)
        examples = []
        for _ in range(n):
            puzzle, solution = self.make_puzzle(rng)
            prompt = self.vocab.encode([str(d) if d else BLANK for d in puzzle])
            answer = self.vocab.encode([str(solution[i]) for i, d in enumerate(puzzle) if d == 0])
            examples.append(Example(prompt, answer, {"puzzle": puzzle, "solution": solution}))
        return examples

    def parse_prompt(self, prompt: Sequence[int]) -> list[int]:
        """The puzzle encoded in a prompt, 0 for blanks."""
        return [self._digit(t) or 0 for t in prompt]

    def fill(self, puzzle: Sequence[int], answer: Sequence[int]) -> list[int]:
        """The puzzle with its blanks filled in row-major order by the answer's digits (0 past its end)."""
        digits = iter([self._digit(t) or 0 for t in answer])
        return [d if d else next(digits, 0) for d in puzzle]

    def check(self, example: Example, answer: Sequence[int]) -> dict[str, float]:
        puzzle = self.parse_prompt(example.prompt)
        blanks = [i for i, d in enumerate(puzzle) if d == 0]
        (solution,) = solve(puzzle, limit=1)
        given = [self._digit(t) for t in answer]
        filled = self.fill(puzzle, answer)
        correct = len(given) == len(blanks) and None not in given and is_solved(filled)
        matches = sum(g == solution[i] for i, g in zip(blanks, given))
        return {"correct": float(correct), "cell_accuracy": matches / max(len(blanks), 1)}

    def render(self, example: Example, answer: Sequence[int] | None = None) -> str:
        """The grid with 2x2 boxes marked; blanks the answer does not fill stay ``_``."""
        filled = self.fill(self.parse_prompt(example.prompt), example.answer if answer is None else answer)
        lines = []
        for r in range(SIZE):
            cells = [str(d) if d else BLANK for d in filled[r * SIZE : (r + 1) * SIZE]]
            lines.append(" | ".join(" ".join(cells[c : c + BOX]) for c in range(0, SIZE, BOX)))
            if r % BOX == BOX - 1 and r < SIZE - 1:
                lines.append("----+----")
        return "\n".join(lines)
