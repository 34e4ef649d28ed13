import pytest
import torch

from minidiff.nn import KVCache, Transformer, TransformerConfig, masks


def small(**kw):
    cfg = dict(vocab_size=11, d_model=32, n_layers=2, n_heads=4, max_len=32)
    cfg.update(kw)
    torch.manual_seed(0)
    return Transformer(**cfg).eval()


def test_forward_shapes_and_hidden_states():
    model = small()
    x = torch.randint(0, 11, (3, 7))
    out = model(x, return_hidden=True)
    assert out.logits.shape == (3, 7, 11)
    assert len(out.hidden_states) == 3
    assert all(h.shape == (3, 7, 32) for h in out.hidden_states)
    torch.testing.assert_close(model(x), out.logits)


def test_kv_cache_decoding_equals_full_recomputation():
    model = small(mask="causal")
    x = torch.randint(0, 11, (2, 9))
    full = model(x)
    cache = KVCache(2)
    pieces = [model(x[:, :4], kv_cache=cache)]
    for i in range(4, 9):
        pieces.append(model(x[:, i : i + 1], kv_cache=cache))
    torch.testing.assert_close(torch.cat(pieces, 1), full, atol=1e-5, rtol=1e-5)
    assert cache.length == 9


def test_read_only_cache_call_leaves_cache_unchanged():
    model = small(mask="causal")
    x = torch.randint(0, 11, (1, 6))
    cache = KVCache(2)
    model(x[:, :3], kv_cache=cache)
    model(x[:, 3:], kv_cache=cache, cache_update=False)
    assert cache.length == 3 and cache.keys[0].shape[2] == 3


def test_block_decoding_with_cache_equals_block_causal_mask():
    # Block diffusion inference: cache the clean prefix, denoise the active block bidirectionally.
    model = small()
    x = torch.randint(0, 11, (2, 10))  # blocks of 4: {0..3} {4..7} {8,9}
    reference = model(x, attn_mask=masks.block_causal(10, 4))
    cache = KVCache(2)
    outs = []
    for start in range(0, 10, 4):
        outs.append(model(x[:, start : start + 4], kv_cache=cache))
    torch.testing.assert_close(torch.cat(outs, 1), reference, atol=1e-5, rtol=1e-5)


def test_cache_crop_rolls_back():
    model = small(mask="causal")
    x = torch.randint(0, 11, (1, 8))
    cache = KVCache(2)
    model(x[:, :6], kv_cache=cache)
    cache.crop(4)
    last = model(x[:, 4:8], kv_cache=cache)
    torch.testing.assert_close(last, model(x)[:, 4:8], atol=1e-5, rtol=1e-5)


def test_model_handles_length_not_multiple_of_block_size():
    model = small()
    x = torch.randint(0, 11, (2, 7))
    out = model(x, attn_mask=masks.block_causal(7, 3))
    assert out.shape == (2, 7, 11) and torch.isfinite(out).all()


def test_causal_model_ignores_the_future():
    model = small(mask="causal")
    x = torch.randint(0, 11, (1, 8))
    y = x.clone()
    y[0, 5:] = (y[0, 5:] + 1) % 11
    torch.testing.assert_close(model(x)[:, :5], model(y)[:, :5])


def test_block_diffusion_training_mask_with_shared_positions():
    # Noisy half with the clean half as context gives the same noisy-half logits as decoding block by block.
    model = small()
    L, bs = 6, 3
    x0 = torch.randint(4, 11, (1, L))
    xt = x0.clone()
    xt[0, [1, 4]] = 3
    pos = torch.arange(L).repeat(2)
    both = model(torch.cat([xt, x0], 1), attn_mask=masks.block_diffusion(L, bs), positions=pos)[:, :L]
    # block 1 of x_t sees clean block 0 then itself
    second = model(torch.cat([x0[:, :3], xt[:, 3:]], 1), attn_mask=masks.block_causal(L, bs))[:, 3:]
    torch.testing.assert_close(both[:, 3:], second, atol=1e-5, rtol=1e-5)


def test_inputs_embeds_equal_token_path():
    model = small()
    x = torch.randint(0, 11, (2, 5))
    torch.testing.assert_close(model(inputs_embeds=model.embed(x)), model(x))


def test_time_conditioning_zero_init_is_identity_and_trainable():
    model = small()
    x = torch.randint(0, 11, (2, 5))
    before = model(x)
    model.enable_time_conditioning()
    t = torch.tensor([0.2, 0.9])
    torch.testing.assert_close(model(x, t=t), before)
    with pytest.raises(ValueError, match="time-conditioned"):
        model(x)
    # after a perturbation the output depends on t
    with torch.no_grad():
        for block in model.blocks:
            block.modulation.weight.normal_(0, 0.1)
    assert not torch.allclose(model(x, t=torch.tensor([0.1, 0.1])), model(x, t=torch.tensor([0.9, 0.9])))
    assert model(x, t=torch.rand(2, 5)).shape == (2, 5, 11)


def test_weight_tying():
    model = small(tie_weights=True)
    assert model.lm_head.weight is model.embed.weight


def test_key_mask_hides_padded_keys():
    model = small()
    x = torch.randint(0, 11, (1, 6))
    valid = torch.tensor([[True, True, True, True, False, False]])
    padded = model(x, key_mask=valid)[:, :4]
    torch.testing.assert_close(padded, model(x[:, :4]), atol=1e-5, rtol=1e-5)


def test_backward_runs():
    model = small().train()
    x = torch.randint(0, 11, (2, 5))
    model(x).logsumexp(-1).mean().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(d_model=30, n_heads=4), "d_model must be divisible by n_heads"),
        (dict(n_layers=0), "n_layers must be a positive int"),
        (dict(vocab_size=-3), "vocab_size must be a positive int"),
        (dict(mask="sideways"), "mask must be one of"),
        (dict(dropout=1.5), "dropout"),
    ],
)
def test_bad_config_is_rejected(kwargs, match):
    cfg = dict(vocab_size=11, d_model=32, n_layers=2, n_heads=4)
    cfg.update(kwargs)
    with pytest.raises(ValueError, match=match):
        TransformerConfig(**cfg)


def test_token_ids_outside_vocab_are_rejected():
    model = small()
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 11\)"):
        model(torch.tensor([[0, 11]]))
    with pytest.raises(TypeError, match="integer tensor"):
        model(torch.zeros(1, 3))


def test_wrong_mask_shape_and_too_long_input_are_rejected():
    model = small()
    with pytest.raises(ValueError, match="attn_mask must end in shape"):
        model(torch.zeros(1, 4, dtype=torch.long), attn_mask=masks.full(5))
    with pytest.raises(ValueError, match="max_len"):
        model(torch.zeros(1, 40, dtype=torch.long))
