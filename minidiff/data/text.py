"""Character-level text: the shipped corpus, a character vocabulary, a train/validation split, windows.

The corpus (``minidiff/data/corpus/``, see its README for the source and the cleaning) is read on demand,
never at import. A typical language-modelling set-up::

    data = TextDataset.load("shakespeare")            # vocab, train ids, validation ids (last 10%)
    x = data.windows("train", seq_len=129, batch_size=32, generator=g)   # [32, 129]
    inputs, targets = x[:, :-1], x[:, 1:]             # next-token prediction wants seq_len + 1 tokens

The split is contiguous (the last ``val_fraction`` of the characters), not random, so no validation window
shares text with a training window except across the one boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import torch

from minidiff.data.vocab import Vocab

__all__ = [
    "available_texts",
    "load_text",
    "char_vocab",
    "encode_text",
    "decode_text",
    "split_train_val",
    "random_windows",
    "TextDataset",
]


def available_texts() -> list[str]:
    """Names of the shipped corpora (the ``*.txt`` files of ``minidiff/data/corpus``)."""
    corpus = resources.files("minidiff.data").joinpath("corpus")
    return sorted(p.name[: -len(".txt")] for p in corpus.iterdir() if p.name.endswith(".txt"))


def load_text(name: str = "shakespeare") -> str:
    """The text of a shipped corpus; unknown names raise ``ValueError`` listing the available ones."""
    names = available_texts()
    if name not in names:
        raise ValueError(f"name must be one of the shipped texts {names}, got {name!r}")
    return resources.files("minidiff.data").joinpath("corpus", f"{name}.txt").read_text(encoding="utf-8")


def char_vocab(text: str) -> Vocab:
    """A vocabulary of the distinct characters of ``text``, sorted (ids 4, 5, ... after the specials)."""
    if not text:
        raise ValueError("text must be a non-empty string")
    return Vocab(sorted(set(text)))


def encode_text(text: str, vocab: Vocab) -> torch.Tensor:
    """Character ids ``[len(text)]`` (long); a character missing from ``vocab`` raises ``ValueError``."""
    return torch.tensor(vocab.encode(list(text)), dtype=torch.long)


def decode_text(ids: torch.Tensor, vocab: Vocab) -> str:
    """Inverse of :func:`encode_text` (specials dropped, stopping at the first EOS)."""
    return vocab.decode_str(ids)


def split_train_val(ids: torch.Tensor, val_fraction: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``1 - val_fraction`` of ``ids`` for training and the rest for validation (deterministic)."""
    if ids.dim() != 1:
        raise ValueError(f"ids must be a 1-D tensor, got shape {tuple(ids.shape)}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction!r}")
    n_val = max(1, round(len(ids) * val_fraction))
    if n_val >= len(ids):
        raise ValueError(f"ids has {len(ids)} tokens, too few to split with val_fraction={val_fraction}")
    return ids[:-n_val], ids[-n_val:]


def random_windows(
    ids: torch.Tensor, seq_len: int, batch_size: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``batch_size`` contiguous windows of ``seq_len`` tokens at uniformly random offsets: ``[B, seq_len]``.

    Deterministic given the state of ``generator``. Windows are drawn with replacement and may overlap.
    """
    if ids.dim() != 1:
        raise ValueError(f"ids must be a 1-D tensor, got shape {tuple(ids.shape)}")
    if not isinstance(seq_len, int) or isinstance(seq_len, bool) or seq_len < 1:
        raise ValueError(f"seq_len must be a positive int, got {seq_len!r}")
    if seq_len > len(ids):
        raise ValueError(f"seq_len must be at most the number of tokens ({len(ids)}), got {seq_len}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    starts = torch.randint(0, len(ids) - seq_len + 1, (batch_size,), generator=generator)
    offsets = starts[:, None] + torch.arange(seq_len)  # [B, seq_len]
    return ids[offsets]


@dataclass
class TextDataset:
    """A character vocabulary and the train/validation ids of one text."""

    vocab: Vocab
    train: torch.Tensor  # long [N_train]
    val: torch.Tensor  # long [N_val]

    @classmethod
    def from_text(cls, text: str, val_fraction: float = 0.1) -> TextDataset:
        vocab = char_vocab(text)
        train, val = split_train_val(encode_text(text, vocab), val_fraction)
        return cls(vocab, train, val)

    @classmethod
    def load(cls, name: str = "shakespeare", val_fraction: float = 0.1) -> TextDataset:
        return cls.from_text(load_text(name), val_fraction)

    def split(self, split: str) -> torch.Tensor:
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        return self.train if split == "train" else self.val

    def windows(
        self, split: str, seq_len: int, batch_size: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """:func:`random_windows` of the ``"train"`` or ``"val"`` ids."""
        return random_windows(self.split(split), seq_len, batch_size, generator)
