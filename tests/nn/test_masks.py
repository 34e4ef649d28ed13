import pytest
import torch

from minidiff.nn import masks


def t(rows):
    return torch.tensor(rows, dtype=torch.bool)


def test_causal_matches_hand_written():
    assert torch.equal(masks.causal(3), t([[1, 0, 0], [1, 1, 0], [1, 1, 1]]))


def test_full_matches_hand_written():
    assert torch.equal(masks.full(2), t([[1, 1], [1, 1]]))


def test_block_causal_with_block_size_not_dividing_length():
    # length 5, block 2: blocks {0,1} {2,3} {4}
    expected = t(
        [
            [1, 1, 0, 0, 0],
            [1, 1, 0, 0, 0],
            [1, 1, 1, 1, 0],
            [1, 1, 1, 1, 0],
            [1, 1, 1, 1, 1],
        ]
    )
    assert torch.equal(masks.block_causal(5, 2), expected)


def test_block_causal_extremes_are_causal_and_full():
    assert torch.equal(masks.block_causal(6, 1), masks.causal(6))
    assert torch.equal(masks.block_causal(6, 6), masks.full(6))
    assert torch.equal(masks.block_causal(6, 100), masks.full(6))


def test_context_causal_matches_hand_written():
    expected = t(
        [
            [1, 0, 0, 0, 0],
            [1, 1, 0, 0, 0],
            [1, 1, 1, 0, 0],
            [1, 1, 1, 1, 1],
            [1, 1, 1, 1, 1],
        ]
    )
    assert torch.equal(masks.context_causal(3, 2), expected)


def test_block_diffusion_mask_matches_hand_written():
    # L = 3, block 2: noisy blocks {0,1} {2}; clean blocks {3,4} {5}
    expected = t(
        [
            # x_t rows: own block, clean blocks strictly before
            [1, 1, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [0, 0, 1, 1, 1, 0],
            # x_0 rows: block-causal over the clean half only
            [0, 0, 0, 1, 1, 0],
            [0, 0, 0, 1, 1, 0],
            [0, 0, 0, 1, 1, 1],
        ]
    )
    assert torch.equal(masks.block_diffusion(3, 2), expected)


def test_block_diffusion_token_causal_clean_half():
    m = masks.block_diffusion(4, 2, clean="token")
    assert torch.equal(m[4:, 4:], masks.causal(4))
    assert torch.equal(m[:4, :4], torch.block_diag(masks.full(2), masks.full(2)))


def test_key_padding_and_combine():
    valid = t([[1, 1, 0]])
    km = masks.key_padding(valid)
    assert km.shape == (1, 1, 1, 3)
    both = masks.combine(masks.causal(3), km)
    assert torch.equal(both[0, 0], t([[1, 0, 0], [1, 1, 0], [1, 1, 0]]))
    assert masks.combine(None, None) is None


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_block_size_is_rejected(bad):
    with pytest.raises(ValueError, match="block_size"):
        masks.block_causal(4, bad)


def test_bad_clean_mode_is_rejected():
    with pytest.raises(ValueError, match="clean must be 'block' or 'token'"):
        masks.block_diffusion(4, 2, clean="nope")


def test_negative_length_is_rejected():
    with pytest.raises(ValueError, match="length"):
        masks.causal(-1)
