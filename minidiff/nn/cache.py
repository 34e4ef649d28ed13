"""A key/value cache for incremental decoding.

Per layer it holds keys and values ``[B, H, T, Dh]`` of every position seen so far. A forward call with
``cache_update=True`` appends its own keys/values (autoregressive decoding, or committing a finished block in
block diffusion); with ``cache_update=False`` the call reads the cache but leaves it unchanged (denoising an
active block against a frozen prefix, as Fast-dLLM's prefix cache does). ``crop`` rolls the cache back, which
speculative decoders need after a rejection.
"""

from __future__ import annotations

import torch

__all__ = ["KVCache"]


class KVCache:
    def __init__(self, n_layers: int) -> None:
        if not isinstance(n_layers, int) or n_layers < 1:
            raise ValueError(f"n_layers must be a positive int, got {n_layers!r}")
        self.keys: list[torch.Tensor | None] = [None] * n_layers
        self.values: list[torch.Tensor | None] = [None] * n_layers
        self.length = 0

    def extend(
        self, layer: int, k: torch.Tensor, v: torch.Tensor, *, update: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return cached keys/values followed by ``k``/``v``; store the result when ``update``."""
        old_k, old_v = self.keys[layer], self.values[layer]
        if old_k is not None:
            if old_k.shape[0] != k.shape[0]:
                raise ValueError(
                    f"batch size changed from {old_k.shape[0]} to {k.shape[0]} within one KVCache"
                )
            k, v = torch.cat([old_k, k], dim=2), torch.cat([old_v, v], dim=2)
        if update:
            self.keys[layer], self.values[layer] = k, v
        return k, v

    def advance(self, n: int) -> None:
        self.length += n

    def crop(self, length: int) -> None:
        """Keep only the first ``length`` positions."""
        if not 0 <= length <= self.length:
            raise ValueError(f"length must be in [0, {self.length}], got {length}")
        for i, (k, v) in enumerate(zip(self.keys, self.values)):
            if k is not None:
                self.keys[i], self.values[i] = k[:, :, :length], v[:, :, :length]
        self.length = length

    def __repr__(self) -> str:
        return f"KVCache(layers={len(self.keys)}, length={self.length})"
