"""Multi-digit arithmetic: ``a op b =`` followed by the result, one token per digit.

Each operand draws its digit count uniformly from ``[min_digits, max_digits]`` and then a uniform number with
that many digits (no leading zero; one-digit operands include 0), so operands of different lengths meet and
the answer length varies. ``ops`` picks among ``+``, ``-`` and ``*``; a subtraction may go negative, written
with a leading ``-``. With ``reverse_answer=True`` the answer is the result string reversed (least-significant
digit first, the sign last), the order in which carries propagate and which autoregressive models find much
easier.

Tokens: ``0``-``9``, ``+``, ``-``, ``*``, ``=``. Layout::

    prompt = digits of a, op, digits of b, =
    answer = the digits of a op b in canonical form (no leading zeros), most-significant first by default

What it measures: exact multi-step symbol manipulation with long-range carries. ``correct`` is an exact match
of the canonical answer; ``digit_accuracy`` compares the answer with the reference position by position,
aligned at the units digit, over the longer of the two (so a missing or extra digit counts as wrong).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from minidiff.data.tasks.base import Example, Task, check_n, register
from minidiff.data.vocab import Vocab

__all__ = ["ArithmeticTask", "OPS"]

DIGITS = [str(d) for d in range(10)]
OPS = ("+", "-", "*")
_APPLY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


@register("arithmetic")
class ArithmeticTask(Task):
    """``a op b = c`` with digit tokens; ``check`` gives ``correct`` and ``digit_accuracy``."""

    def __init__(
        self,
        min_digits: int = 1,
        max_digits: int = 4,
        ops: Sequence[str] = ("+",),
        reverse_answer: bool = False,
    ) -> None:
        if not isinstance(max_digits, int) or isinstance(max_digits, bool) or not 1 <= max_digits <= 20:
            raise ValueError(f"max_digits must be an int in [1, 20], got {max_digits!r}")
        if (
            not isinstance(min_digits, int)
            or isinstance(min_digits, bool)
            or not 1 <= min_digits <= max_digits
        ):
            raise ValueError(f"min_digits must be an int in [1, max_digits={max_digits}], got {min_digits!r}")
        ops = tuple(ops)
        if not ops or any(op not in OPS for op in ops) or len(set(ops)) != len(ops):
            raise ValueError(f"ops must be a non-empty selection without repeats from {OPS}, got {ops!r}")
        self.min_digits, self.max_digits, self.ops, self.reverse_answer = (
            min_digits,
            max_digits,
            ops,
            reverse_answer,
        )
        self.vocab = Vocab([*DIGITS, *OPS, "="])

    def _operand(self, rng: random.Random) -> int:
        digits = rng.randint(self.min_digits, self.max_digits)
        return rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10**digits - 1)

    def answer_string(self, value: int) -> str:
        """The answer as text: ``str(value)``, reversed when ``reverse_answer``."""
        return str(value)[::-1] if self.reverse_answer else str(value)

    def generate(self, n: int, seed: int) -> list[Example]:
        check_n(n)
        rng = random.Random(seed)
        examples = []
        for _ in range(n):
            a, b, op = self._operand(rng), self._operand(rng), rng.choice(self.ops)
            value = _APPLY[op](a, b)
            prompt = self.vocab.encode([*str(a), op, *str(b), "="])
            answer = self.vocab.encode(list(self.answer_string(value)))
            examples.append(Example(prompt, answer, {"a": a, "b": b, "op": op, "value": value}))
        return examples

    def check(self, example: Example, answer: Sequence[int]) -> dict[str, float]:
        # the reference is recomputed from the prompt, so check never trusts example.answer
        text = self.vocab.decode(example.prompt)
        op_at = next(i for i, s in enumerate(text) if i > 0 and s in OPS)
        a, b = int("".join(text[:op_at])), int("".join(text[op_at + 1 : -1]))
        reference = list(self.answer_string(_APPLY[text[op_at]](a, b)))
        given = [self.vocab.symbols[t] if 0 <= t < len(self.vocab) else None for t in map(int, answer)]
        # units digit first in both, so position i is the same place value in both
        ref_le, given_le = (reference, given) if self.reverse_answer else (reference[::-1], given[::-1])
        matches = sum(r == g for r, g in zip(ref_le, given_le))
        return {
            "correct": float(given == reference),
            "digit_accuracy": matches / max(len(reference), len(given)),
        }

    def render(self, example: Example, answer: Sequence[int] | None = None) -> str:
        prompt = "".join(self.vocab.decode(example.prompt))
        ids = example.answer if answer is None else [int(t) for t in answer]
        shown = "".join(self.vocab.symbols[t] if 0 <= t < len(self.vocab) else "?" for t in ids)
        return f"{prompt}{shown}" + ("  (reversed)" if self.reverse_answer else "")
