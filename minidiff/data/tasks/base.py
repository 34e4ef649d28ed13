"""The task protocol: a deterministic generator of (prompt, answer) token sequences and an exact evaluator.

Every task lives in its own file under ``minidiff/data/tasks/`` and registers itself with ``@register``:

* ``task.vocab`` -- a :class:`~minidiff.data.vocab.Vocab` (specials PAD BOS EOS MASK, then the task's symbols);
* ``task.generate(n, seed)`` -> ``list[Example]``, identical for identical ``(n, seed)``;
* ``task.check(example, answer)`` -> per-example metrics (at least ``"correct"``) for an answer given as ids;
* ``task.evaluate(examples, answers)`` -> metrics averaged over examples (answers as id lists, or the full
  sequences a sampler returns, from which the answers are cut after each prompt);
* ``task.render(example, answer=None)`` -> a human-readable string;
* ``task.length_stats(examples)`` -> the answer-length distribution (every task has variable-length answers).

``to_batch`` lays examples out as ``[BOS] prompt answer [EOS] [PAD ...]`` with masks marking the prompt and the
answer, which is the format every objective (autoregressive, masked, block, flexible-length) reads.
"""

from __future__ import annotations

import abc
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from minidiff.data.vocab import Vocab

__all__ = [
    "Example",
    "Batch",
    "Task",
    "register",
    "get_task",
    "available_tasks",
    "to_batch",
    "extract_answers",
    "check_n",
]


@dataclass
class Example:
    """One problem: prompt and reference answer as token ids (no specials), plus task-specific metadata."""

    prompt: list[int]
    answer: list[int]
    meta: dict = field(default_factory=dict)


@dataclass
class Batch:
    """Examples laid out as ``[BOS] prompt answer [EOS] [PAD ...]``; all tensors ``[N, L]``."""

    tokens: torch.Tensor  # long
    prompt_mask: torch.Tensor  # bool, BOS and prompt positions
    answer_mask: torch.Tensor  # bool, answer positions and the EOS
    valid: torch.Tensor  # bool, everything but PAD
    prompt_lengths: torch.Tensor  # long [N], BOS included

    def to(self, device: torch.device | str) -> Batch:
        return Batch(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def __getitem__(self, idx) -> Batch:
        return Batch(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))


class Task(abc.ABC):
    """Base class of the synthetic tasks; see the module docstring for the protocol."""

    name: str = "task"
    vocab: Vocab

    @abc.abstractmethod
    def generate(self, n: int, seed: int) -> list[Example]:
        """``n`` examples, deterministic given ``seed``."""

    @abc.abstractmethod
    def check(self, example: Example, answer: Sequence[int]) -> dict[str, float]:
        """Metrics of one answer (ids, no specials); must contain ``"correct"`` (1.0 or 0.0)."""

    def render(self, example: Example, answer: Sequence[int] | None = None) -> str:
        prompt = " ".join(self.vocab.decode(example.prompt))
        ans = " ".join(self.vocab.decode(example.answer if answer is None else list(answer)))
        return f"{prompt} -> {ans}"

    def evaluate(
        self, examples: Sequence[Example], answers: Sequence[Sequence[int]] | torch.Tensor
    ) -> dict[str, float]:
        """Average :meth:`check` over examples.

        ``answers`` is a list of answers (ids) or a ``[N, L]`` tensor of full sequences as a sampler returns them
        (laid out like :func:`to_batch`), from which the answers are cut with :func:`extract_answers`.
        """
        if isinstance(answers, torch.Tensor):
            answers = extract_answers(answers, examples, self.vocab)
        if len(answers) != len(examples):
            raise ValueError(
                f"answers must have one entry per example: {len(answers)} answers for {len(examples)} examples"
            )
        totals: Counter = Counter()
        for example, answer in zip(examples, answers):
            for key, value in self.check(example, list(answer)).items():
                totals[key] += float(value)
        return {key: value / max(len(examples), 1) for key, value in totals.items()}

    def length_stats(self, examples: Sequence[Example]) -> dict:
        """Answer lengths: histogram ``{length: count}``, mean, min, max."""
        lengths = [len(e.answer) for e in examples]
        if not lengths:
            return {"histogram": {}, "mean": 0.0, "min": 0, "max": 0}
        return {
            "histogram": dict(sorted(Counter(lengths).items())),
            "mean": sum(lengths) / len(lengths),
            "min": min(lengths),
            "max": max(lengths),
        }

    def batch(self, examples: Sequence[Example], **kwargs) -> Batch:
        return to_batch(examples, self.vocab, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={len(self.vocab)})"


def check_n(n: int) -> None:
    """Raise ``ValueError`` unless ``n`` is a non-negative int (shared by every ``generate``)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")


def to_batch(
    examples: Sequence[Example],
    vocab: Vocab,
    *,
    length: int | None = None,
    bos: bool = True,
    eos: bool = True,
) -> Batch:
    """Pad examples to a common ``length`` (default: the longest) as ``[BOS] prompt answer [EOS] [PAD ...]``."""
    if not examples:
        raise ValueError("examples must be a non-empty sequence")
    rows = []
    for e in examples:
        rows.append(
            ([vocab.bos_id] if bos else [])
            + list(e.prompt)
            + list(e.answer)
            + ([vocab.eos_id] if eos else [])
        )
    longest = max(len(r) for r in rows)
    if length is None:
        length = longest
    elif length < longest:
        raise ValueError(f"length must be at least the longest example ({longest} tokens), got {length}")
    n = len(rows)
    tokens = torch.full((n, length), vocab.pad_id, dtype=torch.long)
    prompt_mask = torch.zeros(n, length, dtype=torch.bool)
    answer_mask = torch.zeros(n, length, dtype=torch.bool)
    prompt_lengths = torch.zeros(n, dtype=torch.long)
    for i, (e, row) in enumerate(zip(examples, rows)):
        tokens[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        p = int(bos) + len(e.prompt)
        prompt_mask[i, :p] = True
        answer_mask[i, p : len(row)] = True
        prompt_lengths[i] = p
    return Batch(tokens, prompt_mask, answer_mask, tokens != vocab.pad_id, prompt_lengths)


def extract_answers(
    tokens: torch.Tensor, examples: Sequence[Example], vocab: Vocab, *, bos: bool = True
) -> list[list[int]]:
    """Cut each generated answer out of full sequences laid out as :func:`to_batch` does.

    The answer starts after ``[BOS] prompt`` and ends at the first EOS or PAD; leftover MASK tokens are kept, so
    an unfinished sample is judged (and fails) rather than silently shortened.
    """
    if tokens.dim() != 2 or tokens.shape[0] != len(examples):
        raise ValueError(f"tokens must have shape [{len(examples)}, L], got {tuple(tokens.shape)}")
    out = []
    for row, e in zip(tokens.tolist(), examples):
        answer = []
        for tok in row[int(bos) + len(e.prompt) :]:
            if tok in (vocab.eos_id, vocab.pad_id):
                break
            answer.append(tok)
        out.append(answer)
    return out


_REGISTRY: dict[str, Callable[..., Task]] = {}


def register(name: str) -> Callable[[type[Task]], type[Task]]:
    """Class decorator adding a task to the registry under ``name``."""

    def wrap(cls: type[Task]) -> type[Task]:
        if name in _REGISTRY:
            raise ValueError(f"task name {name!r} is already registered")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def _load_all() -> None:
    import importlib
    import pkgutil

    import minidiff.data.tasks as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name != "base":
            importlib.import_module(f"minidiff.data.tasks.{info.name}")


def available_tasks() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def get_task(name: str, **kwargs) -> Task:
    """Build a registered task by name; unknown names raise ``ValueError`` listing the known ones."""
    _load_all()
    if name not in _REGISTRY:
        raise ValueError(f"unknown task {name!r}; available tasks: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](**kwargs)
