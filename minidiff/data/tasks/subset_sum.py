"""Subset sum: pick some of the given numbers so that they add up to the target, or say ``none``.

Each example has between ``min_items`` and ``max_items`` numbers drawn uniformly from ``1..max_value``. With
probability 1/2 the target is the sum of a random non-empty subset (so a solution exists); otherwise it is
drawn uniformly among the values in ``1..sum(items)`` that no subset reaches (when there are any). Every
number, target included, is one token.

Tokens: ``0`` ... ``{max_items * max_value}``, ``=``, ``none``. Layout::

    prompt = x1 x2 ... xk, =, target
    answer = the chosen numbers in prompt order (the reference picks the fewest, leftmost first), or none

What it measures: search with exact verification. ``correct`` accepts *any* sub-multiset of the items with the
right sum, in any order, not only the reference; ``decision`` only asks whether the answer said feasible or
not.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Sequence

from minidiff.data.tasks.base import Example, Task, check_n, register
from minidiff.data.vocab import Vocab

__all__ = ["SubsetSumTask", "subset_sums", "smallest_subset"]

SEP, NONE = "=", "none"


def subset_sums(items: Sequence[int]) -> set[int]:
    """Every sum of a non-empty sub-multiset of ``items``."""
    sums: set[int] = set()
    for x in items:
        sums |= {s + x for s in sums} | {x}
    return sums


def smallest_subset(items: Sequence[int], target: int) -> list[int] | None:
    """Positions of a subset summing to ``target``: fewest items, then lexicographically first."""
    for size in range(1, len(items) + 1):
        for positions in itertools.combinations(range(len(items)), size):
            if sum(items[i] for i in positions) == target:
                return list(positions)
    return None


@register("subset_sum")
class SubsetSumTask(Task):
    """Subset sums, ``none`` when infeasible; ``check`` gives ``correct`` and ``decision``."""

    def __init__(self, min_items: int = 3, max_items: int = 6, max_value: int = 9) -> None:
        if not isinstance(max_items, int) or isinstance(max_items, bool) or not 1 <= max_items <= 12:
            raise ValueError(f"max_items must be an int in [1, 12], got {max_items!r}")
        if not isinstance(min_items, int) or isinstance(min_items, bool) or not 1 <= min_items <= max_items:
            raise ValueError(f"min_items must be an int in [1, max_items={max_items}], got {min_items!r}")
        if not isinstance(max_value, int) or isinstance(max_value, bool) or not 1 <= max_value <= 50:
            raise ValueError(f"max_value must be an int in [1, 50], got {max_value!r}")
        self.min_items, self.max_items, self.max_value = min_items, max_items, max_value
        self.max_number = max_items * max_value
        self.vocab = Vocab([*(str(i) for i in range(self.max_number + 1)), SEP, NONE])

    def _number(self, token: int) -> int | None:
        index = int(token) - self.vocab.n_specials
        return index if 0 <= index <= self.max_number else None

    def generate(self, n: int, seed: int) -> list[Example]:
        check_n(n)
        rng = random.Random(seed)
        examples = []
        for _ in range(n):
            items = [
                rng.randint(1, self.max_value) for _ in range(rng.randint(self.min_items, self.max_items))
            ]
            sums = subset_sums(items)
            unreachable = [t for t in range(1, sum(items) + 1) if t not in sums]
            if rng.random() < 0.5 or not unreachable:
                chosen = [x for x in items if rng.random() < 0.5] or [rng.choice(items)]
                target = sum(chosen)
            else:
                target = rng.choice(unreachable)
            positions = smallest_subset(items, target)
            answer = [str(items[i]) for i in positions] if positions is not None else [NONE]
            prompt = self.vocab.encode([*map(str, items), SEP, str(target)])
            examples.append(Example(prompt, self.vocab.encode(answer), {"items": items, "target": target}))
        return examples

    def parse_prompt(self, prompt: Sequence[int]) -> tuple[list[int], int]:
        """The items and the target encoded in a prompt."""
        return [self._number(t) for t in prompt[:-2]], self._number(prompt[-1])

    def check(self, example: Example, answer: Sequence[int]) -> dict[str, float]:
        items, target = self.parse_prompt(example.prompt)
        feasible = target in subset_sums(items)
        said_none = len(answer) == 1 and int(answer[0]) == self.vocab.index[NONE]
        chosen = [self._number(t) for t in answer]
        valid = (
            bool(chosen)
            and None not in chosen
            and not Counter(chosen) - Counter(items)  # a sub-multiset of the items
            and sum(chosen) == target
        )
        return {
            "correct": float(valid if feasible else said_none),
            "decision": float(bool(chosen) and None not in chosen if feasible else said_none),
        }

    def render(self, example: Example, answer: Sequence[int] | None = None) -> str:
        items, target = self.parse_prompt(example.prompt)
        ids = example.answer if answer is None else [int(t) for t in answer]
        shown = " ".join(self.vocab.symbols[t] if 0 <= t < len(self.vocab) else "?" for t in ids)
        return f"{' '.join(map(str, items))} -> {target}?  {shown}"
