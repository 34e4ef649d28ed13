"""A random bigram (first-order Markov) language with a known entropy rate, generated unconditionally.

The language over ``n_symbols`` symbols is fixed by ``language_seed`` (separate from ``generate``'s seed): row
``i`` of the transition matrix ``P`` allows only ``successors`` next symbols, one of them the successor of
``i`` on a random cycle through all symbols (so the chain is irreducible and has a unique stationary
distribution ``mu``), with weights drawn from ``Dirichlet(concentration)``. A sentence draws its first
symbol from ``mu``, moves by ``P``, and after every token stops with probability ``stop_prob``; the length is
thus geometric, independent of the symbols, and is conditioned on ``L <= max_length`` (by rejection). Since
the first symbol follows ``mu``, every position has marginal ``mu``.

Entropy rate, in nats per token, of the symbol chain::

    H = sum_i mu_i * sum_j -P_ij log P_ij                   (entropy_rate())
    H + h(q),  h(q) = -q log q - (1 - q) log(1 - q)         (entropy_rate(include_stop=True))

The second adds the stop-or-continue decision taken after each token, so that it matches the per-token
negative log-likelihood of whole sentences, end included, up to the first token's ``H(mu) - H`` and the
``max_length`` normaliser, both of which fade as sentences get longer. ``log_likelihood`` is exact for
``generate``'s law.

Tokens: ``s0`` ... ``s{n_symbols-1}``. Layout::

    prompt = (empty)
    answer = the sentence x_1 ... x_L

What it measures: how well a generator learns a distribution rather than a function. ``correct`` is 1 when
every transition has non-zero probability (``P`` is sparse, so most are impossible); ``valid_transitions`` is
their fraction; ``task.nll_per_token(samples)`` compared with ``task.entropy_rate(include_stop=True)``
measures fit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from minidiff.data.tasks.base import Example, Task, check_n, register
from minidiff.data.vocab import Vocab

__all__ = ["BigramTask", "stationary_distribution", "chain_entropy_rate"]


def stationary_distribution(transition: np.ndarray) -> np.ndarray:
    """The ``mu`` with ``mu P = mu`` and ``sum(mu) = 1`` of an irreducible chain (a linear solve)."""
    k = transition.shape[0]
    system = transition.T - np.eye(k)
    system[-1] = 1.0  # replace one (redundant) balance equation by the normalisation
    rhs = np.zeros(k)
    rhs[-1] = 1.0
    return np.linalg.solve(system, rhs)


def chain_entropy_rate(transition: np.ndarray) -> float:
    """``H = sum_i mu_i H(P_i)`` in nats: the entropy rate of the stationary Markov chain ``P``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        row_entropy = -np.where(transition > 0, transition * np.log(transition), 0.0).sum(axis=1)
    return float(stationary_distribution(transition) @ row_entropy)


@register("bigram")
class BigramTask(Task):
    """Sentences of a sparse random Markov chain; ``check`` gives ``correct`` and ``valid_transitions``."""

    def __init__(
        self,
        n_symbols: int = 8,
        successors: int = 3,
        stop_prob: float = 0.1,
        concentration: float = 1.0,
        max_length: int = 64,
        language_seed: int = 0,
    ) -> None:
        if not isinstance(n_symbols, int) or isinstance(n_symbols, bool) or not 2 <= n_symbols <= 256:
            raise ValueError(f"n_symbols must be an int in [2, 256], got {n_symbols!r}")
        if (
            not isinstance(successors, int)
            or isinstance(successors, bool)
            or not 1 <= successors <= n_symbols
        ):
            raise ValueError(f"successors must be an int in [1, n_symbols={n_symbols}], got {successors!r}")
        if not 0.0 < stop_prob < 1.0:
            raise ValueError(f"stop_prob must lie in (0, 1), got {stop_prob!r}")
        if not concentration > 0.0:
            raise ValueError(f"concentration must be positive, got {concentration!r}")
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1:
            raise ValueError(f"max_length must be a positive int, got {max_length!r}")
        if not isinstance(language_seed, int) or isinstance(language_seed, bool) or language_seed < 0:
            raise ValueError(f"language_seed must be a non-negative int, got {language_seed!r}")
        self.n_symbols, self.stop_prob, self.max_length = n_symbols, stop_prob, max_length
        self.transition = self._random_transition(
            n_symbols, successors, concentration, language_seed
        )  # [k, k]
        self.initial = stationary_distribution(self.transition)  # [k]
        self.vocab = Vocab([f"s{i}" for i in range(n_symbols)])

    @staticmethod
    def _random_transition(k: int, successors: int, concentration: float, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        cycle = rng.permutation(k)
        transition = np.zeros((k, k))
        for position, i in enumerate(cycle):
            on_cycle = cycle[(position + 1) % k]
            others = rng.choice(np.setdiff1d(np.arange(k), [on_cycle]), successors - 1, replace=False)
            support = np.concatenate([[on_cycle], others]).astype(int)
            transition[i, support] = rng.dirichlet(np.full(successors, concentration))
        return transition

    def entropy_rate(self, include_stop: bool = False) -> float:
        """Nats per token: the chain's ``H``, plus the stop decision's ``h(q)`` if ``include_stop``."""
        q = self.stop_prob
        stop_entropy = -q * math.log(q) - (1 - q) * math.log(1 - q)
        return chain_entropy_rate(self.transition) + (stop_entropy if include_stop else 0.0)

    def generate(self, n: int, seed: int) -> list[Example]:
        check_n(n)
        rng = np.random.default_rng(seed)
        examples = []
        for _ in range(n):
            length = int(rng.geometric(self.stop_prob))
            while length > self.max_length:
                length = int(rng.geometric(self.stop_prob))
            sentence = [int(rng.choice(self.n_symbols, p=self.initial))]
            for _ in range(length - 1):
                sentence.append(int(rng.choice(self.n_symbols, p=self.transition[sentence[-1]])))
            examples.append(Example([], [self.vocab.n_specials + s for s in sentence]))
        return examples

    def _states(self, answer: Sequence[int]) -> list[int | None]:
        states = [int(t) - self.vocab.n_specials for t in answer]
        return [s if 0 <= s < self.n_symbols else None for s in states]

    def log_likelihood(self, answer: Sequence[int], include_stop: bool = True) -> float:
        """Exact ``log p(x_1..x_L)`` under ``generate``'s law (``-inf`` if impossible).

        ``include_stop`` adds the length term ``(L-1) log(1-q) + log q - log(1 - (1-q)^max_length)``.
        """
        states = self._states(answer)
        if not states or None in states or len(states) > self.max_length:
            return -math.inf
        probs = [self.initial[states[0]]] + [self.transition[a, b] for a, b in zip(states, states[1:])]
        if min(probs) <= 0:
            return -math.inf
        total = float(np.log(probs).sum())
        if include_stop:
            q, n = self.stop_prob, len(states)
            total += (n - 1) * math.log(1 - q) + math.log(q) - math.log(1 - (1 - q) ** self.max_length)
        return total

    def nll_per_token(self, answers: Sequence[Sequence[int]], include_stop: bool = True) -> float:
        """Total negative log-likelihood over total tokens of sentences (``inf`` if one is impossible)."""
        tokens = sum(len(a) for a in answers)
        if tokens == 0:
            raise ValueError("answers must contain at least one token")
        return -sum(self.log_likelihood(a, include_stop) for a in answers) / tokens

    def check(self, example: Example, answer: Sequence[int]) -> dict[str, float]:
        states = self._states(answer)
        steps = list(zip(states, states[1:]))
        legal = sum(a is not None and b is not None and self.transition[a, b] > 0 for a, b in steps)
        correct = (
            bool(states) and None not in states and legal == len(steps) and len(states) <= self.max_length
        )
        return {
            "correct": float(correct),
            "valid_transitions": legal / len(steps) if steps else float(correct),
        }

    def render(self, example: Example, answer: Sequence[int] | None = None) -> str:
        ids = example.answer if answer is None else answer
        sentence = " ".join(f"s{s}" if s is not None else "?" for s in self._states(ids))
        return f"{sentence}  (log p = {self.log_likelihood(ids):.2f})"
