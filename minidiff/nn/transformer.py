"""The one small Transformer every chapter uses.

A pre-norm decoder stack in the Llama style (Touvron et al., 2023, arXiv 2302.13971): RMSNorm (Zhang & Sennrich,
2019), rotary position embeddings (Su et al., 2021, arXiv 2104.09864), a SwiGLU MLP (Shazeer, 2020,
arXiv 2002.05202) and attention through ``F.scaled_dot_product_attention`` with an explicit boolean mask.
Whether it is an autoregressive LM, a bidirectional denoiser or a block-diffusion model is decided by the mask
passed in (``minidiff.nn.masks``), never by a subclass.

Options the later chapters need:

* **time conditioning** (off by default, as in MDLM): ``t`` is embedded sinusoidally, passed through an MLP, and
  modulates every RMSNorm output as ``(1 + scale) * h + shift`` with a zero-initialised projection. The zero init
  makes a freshly enabled conditioning the identity, which is what retrofitting a trained model needs
  (FlexMDM, Kim et al., 2025, arXiv 2509.01025, add exactly this "adaLN" to LLaDA).
* **input embeddings** in place of token ids (continuous thoughts, soft tokens),
* **explicit positions** (BD3-LM gives the noisy and clean halves the same rotary positions),
* **a KV cache** for incremental decoding, read-only or appending,
* ``return_hidden=True`` returns every layer's residual stream.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from minidiff.nn.cache import KVCache

__all__ = ["TransformerConfig", "Transformer", "TransformerOutput"]

_MASK_KINDS = ("full", "causal")


@dataclass
class TransformerConfig:
    """Sizes and switches of :class:`Transformer`.

    ``mask`` is the attention used when the forward call gives none: ``"full"`` (bidirectional, for denoisers)
    or ``"causal"`` (for autoregressive LMs).
    """

    vocab_size: int
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    max_len: int = 512
    d_ff: int | None = None  # SwiGLU hidden width; default 8/3 d_model rounded up to a multiple of 32
    mask: str = "full"
    dropout: float = 0.0
    tie_weights: bool = False
    time_conditioning: bool = False
    rope_base: float = 10000.0
    norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "max_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model must be divisible by n_heads, got d_model={self.d_model} and n_heads={self.n_heads}"
            )
        if (self.d_model // self.n_heads) % 2:
            raise ValueError(
                f"d_model / n_heads must be even for rotary embeddings, got {self.d_model // self.n_heads}"
            )
        if self.d_ff is None:
            self.d_ff = 32 * math.ceil(8 * self.d_model / 3 / 32)
        elif not isinstance(self.d_ff, int) or self.d_ff < 1:
            raise ValueError(f"d_ff must be a positive int or None, got {self.d_ff!r}")
        if self.mask not in _MASK_KINDS:
            raise ValueError(f"mask must be one of {_MASK_KINDS}, got {self.mask!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")


class TransformerOutput(NamedTuple):
    logits: torch.Tensor  # [B, L, V]
    hidden_states: list[torch.Tensor]  # n_layers + 1 tensors [B, L, D]: embeddings, then after every block
    last_hidden: torch.Tensor  # [B, L, D], after the final norm (what the LM head reads)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding in the rotate-half layout (as Llama): pairs (x_i, x_{i + d/2})."""

    def __init__(self, head_dim: int, max_len: int, base: float) -> None:
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        angles = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)  # [max_len, head_dim/2]
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def angles(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin for integer ``positions`` ([L] or [B, L]), shaped to broadcast over [B, H, L, Dh/2]."""
        cos, sin = self.cos[positions], self.sin[positions]
        if positions.dim() == 2:
            cos, sin = cos[:, None], sin[:, None]
        return cos.to(dtype), sin.to(dtype)

    @staticmethod
    def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Rotate pairs (x_i, x_{i + d/2}) of x [B, H, L, Dh] by the position angles."""
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class TimeEmbedding(nn.Module):
    """Sinusoidal embedding of t in [0, 1] followed by an MLP (DiT, Peebles & Xie, 2023)."""

    def __init__(self, d_model: int, n_freq: int = 128) -> None:
        super().__init__()
        self.n_freq = n_freq
        self.mlp = nn.Sequential(nn.Linear(n_freq, d_model), nn.SiLU(), nn.Linear(d_model, d_model))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.n_freq // 2
        freqs = torch.exp(
            -math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half
        )
        args = 1000.0 * t.float()[..., None] * freqs  # t in [0, 1] scaled to the usual [0, 1000] range
        emb = torch.cat([args.cos(), args.sin()], dim=-1)
        return self.mlp(emb.to(self.mlp[0].weight.dtype))


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        d, h = cfg.d_model, cfg.n_heads
        self.n_heads, self.head_dim, self.eps = h, d // h, cfg.norm_eps
        self.attn_norm = nn.RMSNorm(d, eps=cfg.norm_eps)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.attn_out = nn.Linear(d, d, bias=False)
        self.mlp_norm = nn.RMSNorm(d, eps=cfg.norm_eps)
        self.gate_up = nn.Linear(d, 2 * cfg.d_ff, bias=False)  # SwiGLU's gate and up projections, fused
        self.down = nn.Linear(cfg.d_ff, d, bias=False)
        self.dropout = cfg.dropout
        self.modulation: nn.Linear | None = None
        if cfg.time_conditioning:
            self.add_time_modulation()

    def add_time_modulation(self) -> None:
        d = self.attn_norm.weight.shape[0]
        self.modulation = nn.Linear(d, 4 * d)  # shift/scale for the two norms
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)
        self.modulation.to(self.attn_norm.weight.device, self.attn_norm.weight.dtype)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        attn_mask: torch.Tensor | None,
        is_causal: bool,
        time_emb: torch.Tensor | None,
        cache: KVCache | None,
        layer: int,
        cache_update: bool,
    ) -> torch.Tensor:
        b, n, d = x.shape
        h = self.attn_norm(x)
        if self.modulation is not None and time_emb is not None:
            shift1, scale1, shift2, scale2 = self.modulation(F.silu(time_emb)).chunk(4, dim=-1)
            h = h * (1 + scale1) + shift1
        q, k, v = self.qkv(h).view(b, n, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = RotaryEmbedding.rotate(q, *rope), RotaryEmbedding.rotate(k, *rope)
        if cache is not None:
            k, v = cache.extend(layer, k, v, update=cache_update)
        drop = self.dropout if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal, dropout_p=drop)
        x = x + F.dropout(self.attn_out(a.transpose(1, 2).reshape(b, n, d)), drop, self.training)
        h = self.mlp_norm(x)
        if self.modulation is not None and time_emb is not None:
            h = h * (1 + scale2) + shift2
        gate, up = self.gate_up(h).chunk(2, dim=-1)
        return x + F.dropout(self.down(F.silu(gate) * up), drop, self.training)


class Transformer(nn.Module):
    """A pre-norm RMSNorm / RoPE / SwiGLU Transformer; see the module docstring.

    ``model(tokens)`` returns logits ``[B, L, V]``, so the model is a plain callable for every objective.
    """

    def __init__(self, cfg: TransformerConfig | None = None, **kwargs) -> None:
        super().__init__()
        if cfg is None:
            cfg = TransformerConfig(**kwargs)
        elif kwargs:
            raise TypeError("pass either a TransformerConfig or keyword arguments, not both")
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.rope = RotaryEmbedding(cfg.d_model // cfg.n_heads, cfg.max_len, cfg.rope_base)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.time_embed = TimeEmbedding(cfg.d_model) if cfg.time_conditioning else None
        self.apply(self._init_weights)
        for block in self.blocks:  # GPT-2's scaled init of the residual projections
            nn.init.normal_(block.attn_out.weight, std=0.02 / math.sqrt(2 * cfg.n_layers))
            nn.init.normal_(block.down.weight, std=0.02 / math.sqrt(2 * cfg.n_layers))
        if cfg.tie_weights:
            self.lm_head.weight = self.embed.weight

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    def enable_time_conditioning(self) -> None:
        """Add zero-initialised time conditioning to a model built without it (the function is unchanged)."""
        if self.time_embed is not None:
            return
        self.cfg.time_conditioning = True
        w = self.embed.weight
        self.time_embed = TimeEmbedding(self.cfg.d_model).to(w.device, w.dtype)
        for block in self.blocks:
            block.add_time_modulation()

    def num_parameters(self, *, exclude_embeddings: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            n -= self.embed.weight.numel()
        return n

    def config_dict(self) -> dict:
        return asdict(self.cfg)

    def _check_tokens(self, tokens: torch.Tensor) -> None:
        if tokens.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise TypeError(f"tokens must be an integer tensor, got dtype {tokens.dtype}")
        if tokens.dim() != 2:
            raise ValueError(f"tokens must have shape [B, L], got {tuple(tokens.shape)}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.cfg.vocab_size):
            raise ValueError(
                f"token ids must lie in [0, {self.cfg.vocab_size}) (vocab_size), "
                f"got min {int(tokens.min())} and max {int(tokens.max())}"
            )

    def _attention_mask(
        self, attn_mask: torch.Tensor | None, key_mask: torch.Tensor | None, n: int, offset: int, device
    ) -> tuple[torch.Tensor | None, bool]:
        """Resolve the mask for sdpa: returns (bool mask broadcastable to [B, H, n, offset + n], is_causal)."""
        n_k = offset + n
        if attn_mask is not None:
            if attn_mask.dtype != torch.bool:
                raise TypeError(
                    f"attn_mask must be a bool tensor (True = may attend), got dtype {attn_mask.dtype}"
                )
            if attn_mask.shape[-2:] != (n, n_k):
                raise ValueError(
                    f"attn_mask must end in shape [L_q, L_k] = [{n}, {n_k}], got {tuple(attn_mask.shape)}"
                )
            if attn_mask.dim() == 3:
                attn_mask = attn_mask[:, None]
            mask = attn_mask
        elif self.cfg.mask == "causal":
            if key_mask is None and offset == 0:
                return None, True  # sdpa's fast causal path
            q_pos = torch.arange(offset, n_k, device=device)
            mask = q_pos[:, None] >= torch.arange(n_k, device=device)[None, :]
        else:
            mask = None
        if key_mask is not None:
            if key_mask.dtype != torch.bool or key_mask.shape[-1] != n_k:
                raise ValueError(
                    f"key_mask must be a [B, {n_k}] bool tensor, got {key_mask.dtype} {tuple(key_mask.shape)}"
                )
            km = key_mask[:, None, None, :]
            mask = km if mask is None else mask & km
        return mask, False

    def forward(
        self,
        tokens: torch.Tensor | None = None,
        *,
        inputs_embeds: torch.Tensor | None = None,
        t: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        key_mask: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        kv_cache: KVCache | None = None,
        cache_update: bool = True,
        return_hidden: bool = False,
    ) -> torch.Tensor | TransformerOutput:
        """Run the stack.

        Args:
            tokens: ``[B, L]`` token ids, or ``None`` when ``inputs_embeds`` is given.
            inputs_embeds: ``[B, L, D]`` vectors fed in place of ``embed(tokens)``.
            t: diffusion time, ``[B]`` or ``[B, L]`` in [0, 1]; required iff the model is time-conditioned.
            attn_mask: bool ``[L_q, L_k]``, ``[B, L_q, L_k]`` or ``[B, 1, L_q, L_k]``; default: the config's mask.
            key_mask: bool ``[B, L_k]``, False hides a (padded) key from every query.
            positions: rotary positions ``[L]`` or ``[B, L]``; default ``offset + arange(L)``.
            kv_cache: a :class:`KVCache`; keys/values of this call are appended when ``cache_update``.
            return_hidden: return a :class:`TransformerOutput` with every residual stream.
        """
        if (tokens is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of tokens or inputs_embeds")
        if tokens is not None:
            self._check_tokens(tokens)
            x = self.embed(tokens)
        else:
            if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != self.cfg.d_model:
                raise ValueError(
                    f"inputs_embeds must have shape [B, L, {self.cfg.d_model}], got {tuple(inputs_embeds.shape)}"
                )
            x = inputs_embeds
        b, n, _ = x.shape
        offset = kv_cache.length if kv_cache is not None else 0
        if positions is None:
            if offset + n > self.cfg.max_len:
                raise ValueError(f"sequence length {offset + n} exceeds max_len={self.cfg.max_len}")
            positions = torch.arange(offset, offset + n, device=x.device)
        elif positions.numel() and int(positions.max()) >= self.cfg.max_len:
            raise ValueError(f"positions must be < max_len={self.cfg.max_len}, got {int(positions.max())}")
        time_emb = None
        if self.time_embed is not None:
            if t is None:
                raise ValueError("this model is time-conditioned: pass t ([B] or [B, L] in [0, 1])")
            t = torch.as_tensor(t, device=x.device)
            if t.dim() == 0:
                t = t.expand(b)
            if t.shape not in ((b,), (b, n)):
                raise ValueError(f"t must have shape [{b}] or [{b}, {n}], got {tuple(t.shape)}")
            time_emb = self.time_embed(t)
            time_emb = time_emb[:, None, :] if time_emb.dim() == 2 else time_emb
        mask, is_causal = self._attention_mask(attn_mask, key_mask, n, offset, x.device)
        rope = self.rope.angles(positions, x.dtype)
        hidden = [x] if return_hidden else []
        for i, block in enumerate(self.blocks):
            x = block(x, rope, mask, is_causal, time_emb, kv_cache, i, cache_update)
            if return_hidden:
                hidden.append(x)
        if kv_cache is not None and cache_update:
            kv_cache.advance(n)
        last = self.norm(x)
        logits = self.lm_head(last)
        if return_hidden:
            return TransformerOutput(logits, hidden, last)
        return logits
