"""Specifications of the shipped corpus and the character-level text utilities."""

from __future__ import annotations

import importlib.util
from importlib import resources
from pathlib import Path

import pytest
import torch

from minidiff.data.text import (
    TextDataset,
    available_texts,
    char_vocab,
    decode_text,
    encode_text,
    load_text,
    random_windows,
    split_train_val,
)


@pytest.fixture(scope="module")
def text() -> str:
    return load_text("shakespeare")


def test_corpus_is_under_two_megabytes_of_ascii(text):
    path = resources.files("minidiff.data").joinpath("corpus", "shakespeare.txt")
    size = len(path.read_bytes())
    assert 500_000 < size < 2_000_000
    assert text.isascii() and "\r" not in text
    assert text.startswith("HAMLET, PRINCE OF DENMARK")
    assert "gutenberg" not in text.lower()


def test_unknown_text_names_raise_listing_the_available_ones():
    assert "shakespeare" in available_texts()
    with pytest.raises(ValueError, match="shakespeare"):
        load_text("nope")


def test_char_vocab_round_trips_the_text(text):
    vocab = char_vocab(text)
    assert vocab.symbols[4:] == sorted(set(text))
    ids = encode_text(text[:5000], vocab)
    assert ids.dtype == torch.long and ids.shape == (5000,) and int(ids.min()) >= 4
    assert decode_text(ids, vocab) == text[:5000]
    with pytest.raises(ValueError, match="unknown symbol"):
        encode_text("~", vocab)


def test_split_is_the_last_tenth_for_validation():
    ids = torch.arange(1000)
    train, val = split_train_val(ids)
    assert len(train) == 900 and len(val) == 100
    assert torch.equal(torch.cat([train, val]), ids)
    with pytest.raises(ValueError, match="val_fraction"):
        split_train_val(ids, val_fraction=1.0)


def test_random_windows_are_contiguous_slices_of_the_right_shape():
    ids = torch.arange(100)
    windows = random_windows(ids, seq_len=16, batch_size=8, generator=torch.Generator().manual_seed(0))
    assert windows.shape == (8, 16) and windows.dtype == torch.long
    assert (windows[:, 1:] - windows[:, :-1] == 1).all()
    assert int(windows.min()) >= 0 and int(windows.max()) <= 99
    assert random_windows(ids, 100, 2, torch.Generator().manual_seed(0)).tolist() == [list(range(100))] * 2


def test_random_windows_are_deterministic_given_the_generator():
    ids = torch.arange(1000)
    a = random_windows(ids, 32, 4, torch.Generator().manual_seed(1))
    b = random_windows(ids, 32, 4, torch.Generator().manual_seed(1))
    c = random_windows(ids, 32, 4, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize(
    "kwargs,argument",
    [
        ({"seq_len": 101, "batch_size": 1}, "seq_len"),
        ({"seq_len": 0, "batch_size": 1}, "seq_len"),
        ({"seq_len": 8, "batch_size": 0}, "batch_size"),
    ],
)
def test_random_windows_reject_bad_sizes(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        random_windows(torch.arange(100), **kwargs)


def test_random_windows_reject_a_matrix():
    with pytest.raises(ValueError, match="ids must be a 1-D"):
        random_windows(torch.zeros(4, 4, dtype=torch.long), 2, 1)


def test_text_dataset_splits_and_draws_windows():
    data = TextDataset.load("shakespeare")
    assert len(data.val) == pytest.approx(0.1 * (len(data.train) + len(data.val)), abs=1)
    x = data.windows("val", seq_len=65, batch_size=3, generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 65) and int(x.min()) >= 4 and int(x.max()) < len(data.vocab)
    with pytest.raises(ValueError, match="split"):
        data.windows("test", 8, 1)


def test_corpus_cleaning_strips_the_licence_and_normalises_lines():
    path = Path(__file__).parents[2] / "minidiff" / "data" / "corpus" / "make_corpus.py"
    spec = importlib.util.spec_from_file_location("make_corpus", path)
    make_corpus = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_corpus)
    raw = (
        "The Project Gutenberg EBook\r\nlicence\r\n*** START OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\r\n"
        "\r\nHAMLET   \r\n\r\n\r\n\r\n\r\n\tTo be.\r\n*** END OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\r\nmore licence\r\n"
    )
    assert make_corpus.clean(raw) == "HAMLET\n\n\n    To be.\n"
