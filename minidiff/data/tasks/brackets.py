"""Balanced brackets (Dyck words) of mixed lengths, generated unconditionally (the prompt is empty).

Each example draws a length ``2n`` from the mixture ``lengths`` and then a Dyck word uniformly among all
balanced strings of that length, by the cycle lemma (Dvoretzky and Motzkin, 1947): of the ``2n + 1`` rotations
of a random arrangement of ``n`` opening and ``n + 1`` closing brackets, exactly one has every proper prefix
with at least as many openings as closings; rotating to it and dropping its final ``)`` gives a uniform Dyck
word. With ``types=2`` each matched pair is then ``()`` or ``[]`` with probability 1/2, which keeps the law
uniform over two-type Dyck words. (FlexMDM's reference generator can emit a string of ``(`` only; this one
always returns a balanced string of exactly the drawn length.)

Tokens: ``(``, ``)``, and with ``types=2`` also ``[``, ``]``. Layout::

    prompt = (empty)
    answer = the bracket string, 2n tokens

What it measures: whether an unconditional generator keeps a long-range constraint (every bracket closed, in
order) and reproduces the length distribution: ``correct`` is a non-empty balanced string, and the length
fidelity of a set of samples is::

    total_variation(task.length_distribution(), empirical_distribution(lengths))
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from minidiff.data.tasks.base import Example, Task, check_n, register
from minidiff.data.vocab import Vocab

__all__ = ["BracketsTask", "dyck_word", "is_balanced", "total_variation", "empirical_distribution"]

PAIRS = {")": "(", "]": "["}
DEFAULT_LENGTHS = {4: 0.1, 8: 0.2, 16: 0.3, 32: 0.4}


def dyck_word(n_pairs: int, rng: random.Random) -> str:
    """A uniformly random balanced string of ``n_pairs`` ``()`` pairs (cycle lemma)."""
    steps = ["("] * n_pairs + [")"] * (n_pairs + 1)
    rng.shuffle(steps)
    height, lowest, cut = 0, 0, 0
    for i, step in enumerate(steps):
        height += 1 if step == "(" else -1
        if height < lowest:  # first time at the minimum height: the rotation starts right after it
            lowest, cut = height, i + 1
    rotated = steps[cut:] + steps[:cut]
    return "".join(rotated[:-1])


def is_balanced(text: Sequence[str]) -> bool:
    """Whether every closing bracket closes the latest open bracket of its type, and none stays open."""
    stack = []
    for symbol in text:
        if symbol in PAIRS.values():
            stack.append(symbol)
        elif symbol not in PAIRS or not stack or stack.pop() != PAIRS[symbol]:
            return False
    return not stack


def total_variation(p: Mapping, q: Mapping) -> float:
    """Total variation distance ``0.5 * sum_x |p(x) - q(x)|`` between two distributions given as dicts."""
    return 0.5 * sum(abs(p.get(x, 0.0) - q.get(x, 0.0)) for x in set(p) | set(q))


def empirical_distribution(values: Iterable) -> dict:
    """Relative frequencies of ``values``, e.g. of sample lengths."""
    counts = Counter(values)
    total = sum(counts.values())
    if total == 0:
        raise ValueError("values must be non-empty")
    return {value: count / total for value, count in sorted(counts.items())}


@register("brackets")
class BracketsTask(Task):
    """Dyck words, lengths from a mixture; ``check`` gives ``correct`` and ``length_in_support``."""

    def __init__(self, lengths: Mapping[int, float] | None = None, types: int = 1) -> None:
        lengths = dict(DEFAULT_LENGTHS if lengths is None else lengths)
        if not lengths or any(
            not isinstance(k, int) or isinstance(k, bool) or k < 2 or k % 2 for k in lengths
        ):
            raise ValueError(f"lengths must map even ints >= 2 to weights, got {lengths!r}")
        if any(w < 0 for w in lengths.values()) or sum(lengths.values()) <= 0:
            raise ValueError(f"lengths must have non-negative weights with a positive sum, got {lengths!r}")
        if types not in (1, 2):
            raise ValueError(f"types must be 1 or 2, got {types!r}")
        total = sum(lengths.values())
        self.lengths = {k: w / total for k, w in sorted(lengths.items()) if w > 0}
        self.types = types
        self.vocab = Vocab(["(", ")", "[", "]"][: 2 * types])

    def length_distribution(self) -> dict[int, float]:
        """The normalised length mixture the generator draws from."""
        return dict(self.lengths)

    def sample_string(self, rng: random.Random) -> str:
        (length,) = rng.choices(list(self.lengths), weights=list(self.lengths.values()))
        word = dyck_word(length // 2, rng)
        if self.types == 1:
            return word
        out, stack = list(word), []
        for i, symbol in enumerate(word):
            if symbol == "(":
                stack.append(i)
            elif rng.random() < 0.5:  # recolour the pair (opening at stack top, closing here) as []
                out[stack.pop()], out[i] = "[", "]"
            else:
                stack.pop()
        return "".join(out)

    def generate(self, n: int, seed: int) -> list[Example]:
        check_n(n)
        rng = random.Random(seed)
        return [Example([], self.vocab.encode(list(self.sample_string(rng)))) for _ in range(n)]

    def _symbols(self, answer: Sequence[int]) -> list[str | None]:
        brackets = range(self.vocab.n_specials, len(self.vocab))
        return [self.vocab.symbols[t] if t in brackets else None for t in map(int, answer)]

    def check(self, example: Example, answer: Sequence[int]) -> dict[str, float]:
        return {
            "correct": float(len(answer) > 0 and is_balanced(self._symbols(answer))),
            "length_in_support": float(len(answer) in self.lengths),
        }

    def render(self, example: Example, answer: Sequence[int] | None = None) -> str:
        symbols = self._symbols(example.answer if answer is None else answer)
        return "".join(s or "?" for s in symbols) + f"  (length {len(symbols)})"
