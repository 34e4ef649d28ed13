"""Neural building blocks: the shared Transformer, its attention masks and KV cache."""

from minidiff.nn import masks
from minidiff.nn.cache import KVCache
from minidiff.nn.stable_embedding import StableEmbedding
from minidiff.nn.transformer import Transformer, TransformerConfig, TransformerOutput

__all__ = ["Transformer", "TransformerConfig", "TransformerOutput", "KVCache", "StableEmbedding", "masks"]
