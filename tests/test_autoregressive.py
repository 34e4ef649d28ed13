import pytest
import torch
import torch.nn.functional as F

from minidiff.autoregressive import generate, next_token_loss
from minidiff.data import Example, Vocab, to_batch
from minidiff.nn import Transformer


def model():
    torch.manual_seed(0)
    return Transformer(vocab_size=12, d_model=32, n_layers=2, n_heads=2, max_len=40, mask="causal").eval()


def test_greedy_generation_equals_full_recomputation():
    m = model()
    prompt = torch.randint(4, 12, (2, 3))
    out = generate(m, prompt, 6, temperature=0)
    seq = prompt
    for _ in range(6):
        seq = torch.cat([seq, m(seq)[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(out, seq)


def test_ragged_prompts_are_kept_and_continued():
    m = model()
    prompts = torch.tensor([[5, 6, 0, 0], [7, 8, 9, 10]])
    out = generate(m, prompts, 3, prompt_lengths=torch.tensor([2, 4]), temperature=0)
    assert out.shape == (2, 7)
    assert out[0, :2].tolist() == [5, 6] and out[1, :4].tolist() == [7, 8, 9, 10]
    # row 0 continues right after its own prompt, exactly as an unbatched run does
    alone = generate(m, prompts[:1, :2], 5, temperature=0)
    assert torch.equal(out[0], alone[0])


def test_rows_pad_after_eos_and_decoding_stops_when_all_finish():
    m = model()
    with torch.no_grad():
        m.norm.weight.zero_()  # every logit is 0, so greedy decoding always emits id 0, used here as EOS
    prompts = torch.tensor([[5, 0, 0], [7, 8, 9]])
    out = generate(m, prompts, 10, prompt_lengths=torch.tensor([1, 3]), eos_id=0, pad_id=3, temperature=0)
    # row 0 ends at position 1; row 1 ends at position 3, where decoding stops
    assert out.tolist() == [[5, 0, 3, 3], [7, 8, 9, 0]]


def test_next_token_loss_matches_manual_cross_entropy_on_answers_only():
    m = model()
    vocab = Vocab([str(i) for i in range(8)])
    batch = to_batch([Example([4, 5], [6, 7, 8]), Example([9], [10])], vocab)
    loss, info = next_token_loss(m, batch)
    logits = m(batch.tokens[:, :-1])
    targets = batch.tokens[:, 1:]
    on = batch.answer_mask[:, 1:]
    manual = F.cross_entropy(logits[on], targets[on])
    torch.testing.assert_close(loss, manual)
    assert info["tokens"] == on.sum().item() == 4 + 2  # answers plus their EOS


def test_bad_inputs_are_rejected():
    m = model()
    with pytest.raises(ValueError, match="prompt_lengths"):
        generate(m, torch.tensor([[5, 6]]), 2, prompt_lengths=torch.tensor([3]))
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(m, torch.tensor([[5, 6]]), -1)
    with pytest.raises(TypeError, match="batch must be"):
        next_token_loss(m, [[1, 2]])


def test_generate_accepts_a_batch_and_uses_its_prompts():
    m = model()
    vocab = Vocab([str(i) for i in range(8)])
    batch = to_batch([Example([4, 5], [6, 7, 8]), Example([9], [10])], vocab)
    from_batch = generate(m, batch, 3, temperature=0)
    by_hand = generate(m, batch.tokens[:, :3], 3, prompt_lengths=batch.prompt_lengths, temperature=0)
    assert torch.equal(from_batch, by_hand)
    with pytest.raises(ValueError, match="prompt_lengths must be None"):
        generate(m, batch, 3, prompt_lengths=batch.prompt_lengths)
