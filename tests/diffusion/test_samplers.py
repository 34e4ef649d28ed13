import json

import pytest
import torch

from minidiff.data import Example, Vocab, to_batch
from minidiff.diffusion import (
    SAMPLERS,
    MaskedDiffusion,
    MaskedOracle,
    UniformDiffusion,
    UniformOracle,
    sample_ancestral,
    sample_confidence,
    sample_first_hitting,
    sample_remdm,
    sample_semi_ar,
    sample_uniform,
)
from minidiff.diffusion.sampling import counts_per_step
from minidiff.nn import Transformer

from .conftest import CHI2_8DOF_999, MASK, CountingModel, chi2_against

VOCAB = Vocab(list("abcdefgh"))  # 12 ids, MASK = 3
MDM = MaskedDiffusion(12, VOCAB.mask_id)

MASKED_CONFIGS = [
    ("ancestral", {"steps": 8}),
    ("ancestral", {"steps": 40}),
    ("first_hitting", {}),
    ("confidence", {"steps": 4}),
    ("confidence", {"steps": 8, "score": "margin"}),
    ("confidence", {"steps": 8, "score": "entropy", "temperature": 1.0}),
    ("confidence", {"steps": 10, "score": "random"}),
    ("confidence", {"steps": 10, "score": "left_to_right"}),
    ("confidence", {"threshold": 0.2}),
    ("confidence", {"threshold": 0.2, "steps": 4, "score": "margin"}),
    ("confidence", {"steps": 8, "count_schedule": "cosine", "top_p": 0.9, "temperature": 1.0}),
    ("remdm", {"steps": 16, "strategy": "cap", "eta": 0.2}),
    ("remdm", {"steps": 16, "strategy": "rescale", "eta": 0.5}),
    ("remdm", {"steps": 16, "strategy": "conf"}),
    ("remdm", {"steps": 20, "strategy": "loop", "eta": 0.1}),
    ("semi_ar", {"block_length": 4, "steps": 12}),
    ("semi_ar", {"block_length": 4, "sampler": "first_hitting"}),
    ("semi_ar", {"block_length": 3, "sampler": "ancestral", "steps": 8}),
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for name, kw in MASKED_CONFIGS]


def task_batch() -> tuple[list, object]:
    """Prompts of 2-4 tokens (BOS included) on a canvas of 12: 8 to 10 positions to generate."""
    examples = [Example([4, 5, 6], [7, 8]), Example([9], [10, 11, 4]), Example([5, 5], [6])]
    return examples, to_batch(examples, VOCAB, length=12)


def run_sampler(name, model, prompt, seed=0, **kwargs):
    return SAMPLERS[name](model, MDM, prompt, generator=torch.Generator().manual_seed(seed), **kwargs)


UNIFORM = UniformDiffusion(12, mask_id=3)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    MASKED_CONFIGS + [("uniform", {"steps": 6}), ("uniform", {"steps": 6, "corrector_steps": 2})],
    ids=IDS + ["uniform", "uniform-corrector"],
)
def test_every_sampler_keeps_the_prompt_leaves_no_mask_and_counts_its_calls(tiny_model, name, kwargs):
    _, batch = task_batch()
    counting = CountingModel(tiny_model)
    process = UNIFORM if name == "uniform" else MDM
    tokens, trace = SAMPLERS[name](
        counting, process, batch, generator=torch.Generator().manual_seed(0), **kwargs
    )
    # no MASK left, prompt untouched, the trace ends where the sampler did
    assert not bool((tokens == MASK).any())
    assert torch.equal(tokens[batch.prompt_mask], batch.tokens[batch.prompt_mask])
    assert torch.equal(trace.tokens, tokens) and torch.equal(trace.fixed, batch.prompt_mask)
    # NFE in the trace = model calls actually made
    assert trace.nfe == counting.calls > 0
    assert trace.tokens_per_forward == pytest.approx(trace.generated_per_row / counting.calls)
    if name in ("remdm", "uniform"):
        return
    # without remasking a committed token never changes
    assert bool(trace.states[0][~batch.prompt_mask].eq(MASK).all())
    before, after = trace.states[:-1], trace.states[1:]
    assert bool(((before == MASK) | (after == before)).all())
    assert bool((trace.commit_count[~trace.fixed] == 1).all()) and int(trace.remask_count.sum()) == 0


def test_uniform_corrector_costs_one_call_per_corrector_step(tiny_model):
    _, trace = sample_uniform(tiny_model, UNIFORM, batch_size=2, length=6, steps=5, corrector_steps=3)
    assert trace.nfe == 5 + 4 * 3 and trace.calls.tolist() == [4, 4, 4, 4, 1]
    assert trace.mask_id is None and trace.unmasked_per_step().sum() == 0  # no MASK in a uniform process


def test_ancestral_reuses_the_forward_pass_only_for_models_without_time():
    torch.manual_seed(0)
    plain = CountingModel(Transformer(vocab_size=12, d_model=16, n_layers=1, n_heads=2, max_len=8))
    _, trace = sample_ancestral(plain, MDM, batch_size=1, length=4, steps=64)
    assert trace.n_steps <= 64 and trace.nfe == plain.calls <= 5  # it stops once nothing is masked
    timed = CountingModel(
        Transformer(vocab_size=12, d_model=16, n_layers=1, n_heads=2, max_len=8, time_conditioning=True)
    )
    _, trace = sample_ancestral(timed, MDM, batch_size=1, length=4, steps=64)
    assert trace.nfe == timed.calls == trace.n_steps > 5  # every step is a real call
    _, trace = sample_ancestral(plain, MDM, batch_size=1, length=4, steps=64, cache=False)
    assert trace.nfe == trace.n_steps > 5


def test_trace_fields_are_consistent_and_json_exportable(tiny_model):
    _, batch = task_batch()
    tokens, trace = sample_remdm(tiny_model, MDM, batch, steps=16, strategy="rescale", eta=1.0)
    s, (b, n) = trace.n_steps, tokens.shape
    assert trace.states.shape == (s + 1, b, n) and trace.calls.shape == (s,)
    assert trace.step_logprob.shape == trace.position_logprob.shape == trace.times.shape == (s, b)
    assert trace.block_bounds.shape == (s, b, 2)
    generated = ~trace.fixed
    assert bool((trace.commit_step[trace.fixed] == -1).all())
    assert bool(((trace.commit_step[generated] >= 0) & (trace.commit_step[generated] < s)).all())
    assert bool(((trace.confidence[generated] > 0) & (trace.confidence[generated] <= 1)).all())
    torch.testing.assert_close(trace.logprob[generated].exp(), trace.confidence[generated])
    assert int(trace.remask_count.sum()) == len(trace.remask_events()) > 0
    assert bool((trace.commit_count[generated] == trace.remask_count[generated] + 1).all())
    final = trace.states[trace.commit_step.clamp_min(0) + 1, torch.arange(b)[:, None], torch.arange(n)]
    assert torch.equal(final[generated], tokens[generated])  # the recorded step wrote the final token
    row = json.loads(json.dumps(trace.to_dict(0)))
    assert row["nfe"] == trace.nfe and len(row["states"]) == s + 1 and row["confidence"][0] is None
    json.dumps(trace.to_dict())


def test_first_hitting_unmasks_exactly_one_token_per_step(tiny_model):
    _, trace = sample_first_hitting(tiny_model, MDM, batch_size=3, length=7)
    assert trace.n_steps == 7 and bool((trace.unmasked_per_step() == 1).all())
    assert bool((trace.times[1:] <= trace.times[:-1]).all())  # the hitting times go backwards


def test_threshold_commits_every_confident_token_and_at_least_one_per_step():
    def model(z):  # positions 0-2: certain of token 5; positions 3-5: flat
        logits = torch.zeros(*z.shape, 12)
        logits[:, :3, 5] = 20.0
        return logits

    counting = CountingModel(model)
    _, trace = sample_confidence(counting, MDM, batch_size=2, length=6, threshold=0.9)
    assert trace.unmasked_per_step()[:, 0].tolist() == [3, 1, 1, 1] and trace.nfe == 4
    assert trace.commit_step[0, :3].tolist() == [0, 0, 0]


def test_commit_counts_follow_llada_and_the_schedule():
    assert counts_per_step(torch.tensor([10, 3]), 4).tolist() == [[3, 3, 2, 2], [1, 1, 1, 0]]
    counts = counts_per_step(torch.tensor([32, 7]), 8, "cosine")
    assert counts.sum(1).tolist() == [32, 7] and bool((counts >= 0).all())
    assert counts[0, :4].sum() > counts[0, 4:].sum()  # 1 - cos(π/4) ≈ 0.29 of the masks remain at half time


def test_left_to_right_order_commits_in_position_order(tiny_model):
    _, trace = sample_confidence(tiny_model, MDM, batch_size=2, length=6, steps=6, score="left_to_right")
    assert trace.commit_step.tolist() == [list(range(6))] * 2


def test_semi_autoregressive_decoding_stays_inside_the_current_block(tiny_model):
    _, batch = task_batch()
    tokens, trace = sample_semi_ar(tiny_model, MDM, batch, block_length=4, steps=12)  # 3 blocks, 4 steps each
    assert trace.n_steps == 10  # the last block holds at most 2 masks: done after 2 of its 4 steps
    positions = torch.arange(12)
    for k in range(trace.n_steps):
        start, end = trace.block_bounds[k, :, 0:1], trace.block_bounds[k, :, 1:2]
        changed = trace.states[k + 1] != trace.states[k]
        assert bool((changed <= ((positions >= start) & (positions < end))).all())
        right = (positions >= end) & ~trace.fixed
        assert bool((trace.states[k + 1][right] == MASK).all())
    starts = trace.block_bounds[:, 0, 0]
    assert starts.unique(return_counts=True)[1].tolist() == [4, 4, 2] and bool(
        (starts[1:] >= starts[:-1]).all()
    )


def test_same_generator_seed_gives_the_same_samples(tiny_model):
    _, batch = task_batch()
    a, ta = run_sampler("ancestral", tiny_model, batch, seed=7, steps=8)
    b, tb = run_sampler("ancestral", tiny_model, batch, seed=7, steps=8)
    assert torch.equal(a, b) and torch.equal(ta.states, tb.states)


def test_time_conditioned_transformer_and_training_mode(gen):
    model = Transformer(vocab_size=12, d_model=16, n_layers=1, n_heads=2, max_len=8, time_conditioning=True)
    model.train()
    for name in ("ancestral", "first_hitting", "confidence", "remdm"):
        tokens, trace = SAMPLERS[name](model, MDM, batch_size=2, length=5, generator=gen)
        assert not bool((tokens == MASK).any()) and bool(torch.isfinite(trace.times).all())
    assert model.training


def test_samples_can_be_scored_by_the_task(tiny_model):
    from minidiff.data import get_task

    task = get_task("arithmetic", max_digits=2)
    examples = task.generate(4, seed=0)
    batch = task.batch(examples, length=12)
    model = Transformer(vocab_size=len(task.vocab), d_model=16, n_layers=1, n_heads=2, max_len=12)
    tokens, _ = sample_confidence(
        model, MaskedDiffusion(len(task.vocab), task.vocab.mask_id), batch, block_length=3
    )
    metrics = task.evaluate(examples, tokens)
    assert 0.0 <= metrics["correct"] <= 1.0


# -- the samplers reproduce a distribution the model knows exactly -------------------------------------------


CHI2_CASES = [
    ("ancestral", {"steps": 64}),
    ("first_hitting", {}),
    ("confidence", {"steps": 2, "score": "random", "temperature": 1.0}),
    ("remdm", {"steps": 64, "strategy": "cap", "eta": 0.05}),
    ("remdm", {"steps": 100, "strategy": "loop", "eta": 0.1}),
    ("semi_ar", {"block_length": 1, "sampler": "ancestral", "steps": 2}),
]


@pytest.mark.parametrize(
    ("name", "kwargs"), CHI2_CASES, ids=[c[0] + str(i) for i, c in enumerate(CHI2_CASES)]
)
def test_masked_samplers_reproduce_the_data_distribution_with_an_oracle(joint, name, kwargs):
    mdm = MaskedDiffusion(4, MASK)
    oracle = MaskedOracle(joint, mask_id=MASK)
    tokens, _ = SAMPLERS[name](
        oracle, mdm, batch_size=3000, length=2, generator=torch.Generator().manual_seed(1), **kwargs
    )
    assert chi2_against(tokens, joint) < CHI2_8DOF_999


@pytest.mark.parametrize("corrector_steps", [0, 1])
def test_uniform_ancestral_reproduces_the_data_distribution_with_an_oracle(joint, corrector_steps):
    process = UniformDiffusion(3)
    oracle = UniformOracle(joint, process)
    steps = 100 if corrector_steps == 0 else 50
    tokens, _ = sample_uniform(
        oracle, process, batch_size=3000, length=2, steps=steps, corrector_steps=corrector_steps,
        generator=torch.Generator().manual_seed(2),
    )  # fmt: skip
    assert chi2_against(tokens, joint) < CHI2_8DOF_999


def test_conditional_and_infilling_generation_follow_the_conditionals(joint):
    mdm, oracle = MaskedDiffusion(4, MASK), MaskedOracle(joint, mask_id=MASK)
    n = 4000
    for given in (0, 1):  # fix position `given` to symbol 2, sample the other one
        tokens = torch.full((n, 2), MASK)
        tokens[:, given] = 2
        fixed = torch.zeros(n, 2, dtype=torch.bool)
        fixed[:, given] = True
        out, _ = sample_ancestral(
            oracle, mdm, (tokens, fixed), steps=4, generator=torch.Generator().manual_seed(3)
        )
        assert bool((out[:, given] == 2).all())
        conditional = joint[2] if given == 0 else joint[:, 2]
        conditional = conditional / conditional.sum()
        counts = torch.bincount(out[:, 1 - given], minlength=3).double()
        assert float(((counts - n * conditional) ** 2 / (n * conditional)).sum()) < 13.8  # 2 dof, 0.999


def test_greedy_and_nucleus_sampling_pick_the_likely_tokens(joint):
    mdm, oracle = MaskedDiffusion(4, MASK), MaskedOracle(joint, mask_id=MASK)
    a, _ = sample_confidence(
        oracle, mdm, batch_size=5, length=2, steps=2, generator=torch.Generator().manual_seed(0)
    )
    b, _ = sample_confidence(
        oracle, mdm, batch_size=5, length=2, steps=2, generator=torch.Generator().manual_seed(1)
    )
    assert torch.equal(a, b)  # temperature 0: deterministic
    tokens, _ = sample_first_hitting(oracle, mdm, batch_size=500, length=2, top_p=0.01)
    assert set(map(tuple, tokens.tolist())) <= {(0, 0), (1, 1)}  # argmax of each conditional given the other


# -- bad input ------------------------------------------------------------------------------------------------


def test_a_prompt_longer_than_the_sequence_is_rejected(tiny_model):
    with pytest.raises(ValueError, match=r"prompt \(10 tokens\) is longer than the sequence \(length=6\)"):
        sample_ancestral(tiny_model, MDM, torch.full((2, 10), 5), length=6)
    _, batch = task_batch()
    with pytest.raises(ValueError, match="longer than the sequence"):
        sample_confidence(tiny_model, MDM, batch, length=3)


def test_a_model_returning_the_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match=r"\[B, L, V\] = \[2, 5, 12\]"):
        sample_ancestral(lambda z: torch.zeros(2, 5, 11), MDM, batch_size=2, length=5)
    with pytest.raises(TypeError, match="logits tensor"):
        sample_first_hitting(lambda z: (torch.zeros(2, 5, 12),), MDM, batch_size=2, length=5)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m: sample_ancestral(m, MDM, length=5), ValueError, "batch_size"),
        (lambda m: sample_ancestral(m, MDM, batch_size=2, length=5, gen_length=3), ValueError, "not both"),
        (
            lambda m: sample_ancestral(m, MDM, batch_size=2, length=8, steps=3, block_length=4),
            ValueError,
            "multiple",
        ),
        (
            lambda m: sample_ancestral(m, MDM, batch_size=2, length=5, temperature=-1.0),
            ValueError,
            "temperature",
        ),
        (lambda m: sample_ancestral(m, MDM, batch_size=2, length=5, top_p=0.0), ValueError, "top_p"),
        (lambda m: sample_ancestral(m, MDM, batch_size=2, length=5, steps=0), ValueError, "steps"),
        (lambda m: sample_ancestral(m, UNIFORM, batch_size=2, length=5), TypeError, "MaskedDiffusion"),
        (lambda m: sample_uniform(m, MDM, batch_size=2, length=5), TypeError, "UniformDiffusion"),
        (
            lambda m: sample_first_hitting(m, MDM, batch_size=2, length=5, steps=5),
            ValueError,
            "steps must be None",
        ),
        (
            lambda m: sample_confidence(m, MDM, batch_size=2, length=5, score="best"),
            ValueError,
            "score must be one of",
        ),
        (
            lambda m: sample_confidence(m, MDM, batch_size=2, length=5, score="entropy", threshold=0.5),
            ValueError,
            "threshold",
        ),
        (
            lambda m: sample_remdm(m, MDM, batch_size=2, length=5, strategy="max"),
            ValueError,
            "strategy must be one of",
        ),
        (
            lambda m: sample_semi_ar(m, MDM, batch_size=2, length=5, block_length=2, sampler="ar"),
            ValueError,
            "sampler must be",
        ),
        (
            lambda m: sample_ancestral(m, MDM, torch.full((2, 3), MASK), gen_length=2),
            ValueError,
            "mask token",
        ),
        (lambda m: sample_ancestral(m, MDM, torch.full((2, 3), 5)), ValueError, "nothing to generate"),
        (lambda m: sample_ancestral(m, MDM, "abc", length=5), TypeError, "prompt must be"),
    ],
)
def test_bad_sampler_arguments_give_clear_errors(tiny_model, call, error, match):
    with pytest.raises(error, match=match):
        call(tiny_model)
