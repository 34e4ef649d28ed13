"""Vocabularies: four specials (PAD, BOS, EOS, MASK) followed by a task's own symbols.

The specials always take ids 0-3, so every model, sampler and loss can rely on ``vocab.mask_id`` etc. without
looking the task up. A symbol is any hashable string; a character-level vocabulary is a ``Vocab`` whose
symbols are single characters.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

__all__ = ["Vocab", "SPECIALS"]

SPECIALS = ("<pad>", "<bos>", "<eos>", "<mask>")


class Vocab:
    """An ordered symbol table with the four specials first.

    >>> v = Vocab(["a", "b"])
    >>> v.encode(["b", "a"]), v.decode([5, 4])
    ([5, 4], ['b', 'a'])
    """

    pad_id, bos_id, eos_id, mask_id = 0, 1, 2, 3

    def __init__(self, symbols: Iterable[str]) -> None:
        symbols = list(symbols)
        clash = [s for s in symbols if s in SPECIALS]
        if clash:
            raise ValueError(f"symbols must not contain the specials {SPECIALS}, got {clash}")
        if len(set(symbols)) != len(symbols):
            raise ValueError("symbols must be unique")
        self.symbols: list[str] = list(SPECIALS) + symbols
        self.index: dict[str, int] = {s: i for i, s in enumerate(self.symbols)}

    def __len__(self) -> int:
        return len(self.symbols)

    @property
    def size(self) -> int:
        return len(self.symbols)

    @property
    def n_specials(self) -> int:
        return len(SPECIALS)

    def encode(self, symbols: Sequence[str]) -> list[int]:
        try:
            return [self.index[s] for s in symbols]
        except KeyError as err:
            raise ValueError(
                f"unknown symbol {err.args[0]!r}; the vocabulary has {self.symbols[4:][:20]}..."
            ) from err

    def decode(self, ids: Sequence[int] | torch.Tensor, *, strip: bool = False) -> list[str]:
        """Map ids to symbols; ``strip`` drops PAD/BOS and stops at the first EOS."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        out = []
        for i in ids:
            if not 0 <= i < len(self.symbols):
                raise ValueError(f"token id must lie in [0, {len(self.symbols)}), got {i}")
            if strip:
                if i == self.eos_id:
                    break
                if i in (self.pad_id, self.bos_id):
                    continue
            out.append(self.symbols[i])
        return out

    def decode_str(self, ids: Sequence[int] | torch.Tensor, sep: str = "") -> str:
        """Decode with specials stripped and join, e.g. for character vocabularies."""
        return sep.join(self.decode(ids, strip=True))

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, symbols={self.symbols[4:12]}{'...' if len(self) > 12 else ''})"

    def state_dict(self) -> dict:
        return {"symbols": self.symbols[len(SPECIALS) :]}

    @classmethod
    def from_state_dict(cls, state: dict) -> Vocab:
        return cls(state["symbols"])
