r"""The stable embedding layer of 8-bit optimizers (Dettmers, Lewis, Shleifer & Zettlemoyer, 2022, arXiv 2110.02861,
§2.3).

Embedding rows receive sparse, rarely repeated gradients whose optimizer statistics are the least friendly to
quantisation, and language models were found to be unstable with 8-bit states there. The paper's fix has three
parts, all here:

1. **Xavier uniform initialisation** (Glorot & Bengio, 2010) instead of N(0, 1): small initial outputs;
2. **a LayerNorm** on the looked-up vectors, computed in float32 (before position embeddings are added, in the
   paper's setup), which keeps the output variance near 1 through training;
3. **32-bit optimizer state** for the embedding weight: the weight carries ``optim_bits = 32``, which
   ``minidiff.optim``'s ``adamw8bit`` and ``lion8bit`` read (bitsandbytes registers the same override with its
   ``GlobalOptimManager``).

Drop-in for ``nn.Embedding`` (same constructor arguments; ``padding_idx`` rows start at zero).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["StableEmbedding"]


class StableEmbedding(nn.Embedding):
    """``LayerNorm(Embedding(x))`` with Xavier init and a weight marked for 32-bit optimizer state."""

    def __init__(
        self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None, **kwargs
    ) -> None:
        super().__init__(num_embeddings, embedding_dim, padding_idx=padding_idx, **kwargs)
        self.norm = nn.LayerNorm(embedding_dim, device=self.weight.device)
        self.weight.optim_bits = 32  # read by the 8-bit optimizers: keep this parameter's state in 32 bits

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.weight)
        self._fill_padding_idx_with_zero()

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        emb = F.embedding(
            input,
            self.weight,
            self.padding_idx,
            self.max_norm,
            self.norm_type,
            self.scale_grad_by_freq,
            self.sparse,
        )
        # The normalisation runs in float32 whatever the weight's dtype: it is what keeps the output stable.
        norm = self.norm
        out = F.layer_norm(
            emb.float(), norm.normalized_shape, norm.weight.float(), norm.bias.float(), norm.eps
        )
        return out.to(self.weight.dtype)
