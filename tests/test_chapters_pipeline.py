"""The chapter pipeline: the contract of tutorials/*.ipynb, nbval catching a broken chapter, and book/build.py's
table of contents, cache and notebook transforms."""

import importlib.util
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
CHAPTERS = sorted(TUTORIALS.glob("*.ipynb"))
# The flags `make test` gives pytest for the chapters (checked against the Makefile below).
NBVAL_FLAGS = [
    "--nbval-lax",
    "--nbval-current-env",
    "--nbval-sanitize-with",
    str(ROOT / "tests" / "nbval_sanitize.cfg"),
]


def _load_build():
    spec = importlib.util.spec_from_file_location("minidiff_book_build", ROOT / "book" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _load_build()


def _chapter_params():
    return [pytest.param(p, id=p.name) for p in CHAPTERS] or [
        pytest.param(None, marks=pytest.mark.skip(reason="no chapter in tutorials/ yet"), id="none")
    ]


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


# --------------------------------------------------------------------------------------------- the contract
@pytest.mark.parametrize("path", _chapter_params())
def test_chapter_file_name_is_NN_name(path):
    assert build.CHAPTER_PATTERN.match(path.name), f"{path.name}: chapters are named NN_short_name.ipynb"


@pytest.mark.parametrize("path", _chapter_params())
def test_chapter_is_committed_with_outputs_and_without_widget_state(path):
    nb = nbformat.read(path, as_version=4)
    assert "widgets" not in nb.metadata, (
        f"{path.name} stores widget state; run `python book/build.py --execute-in-place`"
    )
    assert any(c.get("outputs") for c in _code_cells(nb)), (
        f"{path.name} has no outputs; commit it executed (full mode)"
    )
    for cell in _code_cells(nb):
        for output in cell.get("outputs", []):
            assert output.get("output_type") != "error", f"{path.name} was committed with an error output"


@pytest.mark.parametrize("path", _chapter_params())
def test_chapter_first_code_cell_reads_fast(path):
    first = _code_cells(nbformat.read(path, as_version=4))[0]
    assert "FAST" in first.source, f"{path.name}: the first code cell must read minidiff.config.FAST"


# --------------------------------------------------------------------------------------------- nbval
def _tiny_chapter() -> nbformat.NotebookNode:
    """A chapter in miniature, with the outputs it produces stored, as a committed chapter has them."""
    cells = [
        new_markdown_cell("# A tiny chapter"),
        new_code_cell("from minidiff.config import FAST\nx = 6 * 7", execution_count=1),
        new_code_cell(
            "# NBVAL_CHECK_OUTPUT\nprint('answer', x)",
            execution_count=2,
            outputs=[new_output("stream", name="stdout", text="answer 42\n")],
        ),
        new_code_cell(
            "print('full mode' if not FAST else 'fast mode')",  # not checked: differs between modes
            execution_count=3,
            outputs=[new_output("stream", name="stdout", text="full mode\n")],
        ),
    ]
    return new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})


def _nbval_outcomes(folder: Path) -> dict[str, str]:
    """Run pytest with `make test`'s nbval flags over ``folder``; per notebook "passed" or "failed"."""
    report = folder / "report.xml"
    env = dict(os.environ, MINIDIFF_FAST="1", MINIDIFF_WIDGETS="static")
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-q", *NBVAL_FLAGS]
    subprocess.run(
        [*cmd, f"--junitxml={report}", str(folder)], cwd=folder, env=env, capture_output=True, timeout=300
    )
    outcomes: dict[str, str] = {}
    for case in ET.parse(report).iter("testcase"):
        name = Path(case.get("classname")).stem  # "intact.ipynb"
        failed = case.find("failure") is not None or case.find("error") is not None
        if failed or name not in outcomes:
            outcomes[name] = "failed" if failed else outcomes.get(name, "passed")
    return outcomes


@pytest.mark.timeout(300)
def test_nbval_fails_a_chapter_that_raises_or_whose_checked_cell_changes(tmp_path):
    intact = _tiny_chapter()
    raising = _tiny_chapter()
    raising.cells[1].source += "\nraise RuntimeError('a broken chapter')"
    changed = _tiny_chapter()
    changed.cells[2].source = changed.cells[2].source.replace("x)", "x + 1)")  # prints 43, 42 is stored
    for name, nb in {"intact": intact, "raising": raising, "changed": changed}.items():
        nbformat.write(nb, tmp_path / f"{name}.ipynb")
    assert _nbval_outcomes(tmp_path) == {"intact": "passed", "raising": "failed", "changed": "failed"}


def test_make_test_runs_every_chapter_under_nbval_with_these_flags():
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^test:.*?\n((?:\t.*\n)+)", makefile, re.M).group(1).replace("\\\n", " ")
    for flag in [
        "MINIDIFF_FAST=1",
        "--dist loadfile",
        "--nbval-lax",
        "--nbval-current-env",
        " tests tutorials",
    ]:
        assert flag in " ".join(recipe.split()), f"make test lost {flag!r}"
    assert "--nbval-sanitize-with tests/nbval_sanitize.cfg" in " ".join(recipe.split())
    assert re.search(r"^test:.*\blint\b", makefile, re.M), "make test must run the linters"


# --------------------------------------------------------------------------------------------- book/build.py
def test_toc_lists_the_chapter_files_present_grouped_into_parts(tmp_path):
    for name in [
        "00_tour.ipynb",
        "03_flexible_length.ipynb",
        "12_matrix_optimizers.ipynb",
        "notes.ipynb",
        "7_x.ipynb",
    ]:
        (tmp_path / name).write_text("{}")
    chapters = build.find_chapters(tmp_path)
    assert [p.name for p in chapters] == [
        "00_tour.ipynb",
        "03_flexible_length.ipynb",
        "12_matrix_optimizers.ipynb",
    ]
    toc = build.toc_yaml(chapters, [("About the chapters", "chapter_contract")])
    assert toc.splitlines()[1:] == [
        "format: jb-book",
        "root: index",
        "parts:",
        '  - caption: "Start here"',
        "    chapters:",
        "      - file: 00_tour",
        '  - caption: "Diffusion and flows"',
        "    chapters:",
        "      - file: 03_flexible_length",
        '  - caption: "Optimizers"',
        "    chapters:",
        "      - file: 12_matrix_optimizers",
        '  - caption: "About the chapters"',
        "    chapters:",
        "      - file: chapter_contract",
    ]


def test_cache_key_follows_code_and_library_not_outputs_or_prose():
    nb = _tiny_chapter()
    key = build.cache_key(nb, "lib-1")
    prose = _tiny_chapter()
    prose.cells[0].source = "# Another title"
    prose.cells[2].outputs = []
    assert build.cache_key(prose, "lib-1") == key
    code = _tiny_chapter()
    code.cells[1].source = "x = 43"
    assert build.cache_key(code, "lib-1") != key
    assert build.cache_key(nb, "lib-2") != key


def _fake_library(root: Path) -> None:
    for name, text in {
        "minidiff/a.py": "A = 1",
        "minidiff/b.py": "B = 1",
        "minidiff/data/corpus.txt": "text",
    }.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "widgets").mkdir()


def test_library_digest_follows_imported_modules_and_data_files_only(tmp_path):
    _fake_library(tmp_path)
    digest = build.library_digest(["minidiff/a.py"], tmp_path)
    (tmp_path / "minidiff/b.py").write_text("B = 2")  # not imported by the chapter
    assert build.library_digest(["minidiff/a.py"], tmp_path) == digest
    (tmp_path / "minidiff/a.py").write_text("A = 2")
    changed = build.library_digest(["minidiff/a.py"], tmp_path)
    assert changed != digest
    (tmp_path / "minidiff/data/corpus.txt").write_text("other text")
    assert build.library_digest(["minidiff/a.py"], tmp_path) != changed


def test_a_recorded_execution_is_fresh_until_code_library_or_outputs_change(tmp_path):
    _fake_library(tmp_path)
    nb = _tiny_chapter()
    key = build.cache_key(nb, build.library_digest(["minidiff/a.py"], tmp_path))
    nb.metadata[build.META_KEY] = {"key": key, "deps": ["minidiff/a.py"], "mode": "full"}
    nb = nbformat.from_dict(build.for_commit(nb))
    assert build.is_fresh(nb, check_outputs=True, root=tmp_path)
    edited = _tiny_chapter()
    edited.cells[1].source = "x = 43"
    assert not build.is_fresh(nb, edited, check_outputs=True, root=tmp_path)
    (tmp_path / "minidiff/a.py").write_text("A = 2")
    assert not build.is_fresh(nb, check_outputs=True, root=tmp_path)
    (tmp_path / "minidiff/a.py").write_text("A = 1")
    nb.cells[3].outputs[0].text = "fast mode\n"  # re-run by hand in fast mode, then saved
    assert not build.is_fresh(nb, check_outputs=True, root=tmp_path)
    assert build.is_fresh(nb, check_outputs=False, root=tmp_path)


def _tqdm_state() -> dict:
    def model(name, **state):
        return {"model_name": name, "model_module": "@jupyter-widgets/controls", "state": state}

    return {
        "box": model("HBoxModel", children=["IPY_MODEL_pre", "IPY_MODEL_bar", "IPY_MODEL_post"]),
        "pre": model("HTMLModel", value="fit: 100%"),
        "bar": model("FloatProgressModel", value=50, max=50, min=0),
        "post": model("HTMLModel", value="&nbsp;50/50 [00:01&lt;00:00, 45.1it/s]"),
    }


def test_for_commit_strips_widget_state_and_turns_progress_bars_into_text():
    nb = _tiny_chapter()
    view = {"model_id": "box", "version_major": 2, "version_minor": 0}
    nb.cells[1].outputs = [new_output("display_data", data={build.WIDGET_VIEW: view, "text/plain": "  0%|"})]
    nb.metadata["widgets"] = {
        build.WIDGET_STATE: {"state": _tqdm_state(), "version_major": 2, "version_minor": 0}
    }
    out = build.for_commit(nb)
    assert "widgets" not in out["metadata"]
    assert out["cells"][1]["outputs"][0]["data"] == {
        "text/plain": "fit: 100% ██████████ 50/50 [00:01<00:00, 45.1it/s]"
    }


def test_for_book_renders_plotly_figures_against_the_sites_single_plotly_js():
    figure = {"data": [{"type": "scatter", "y": [1, 3, 2]}], "layout": {"height": 300}}
    inline_plotly = "<script>window.PlotlyConfig = {};" + "x" * 200_000 + "</script>"
    nb = _tiny_chapter()
    stateless_bar = {build.WIDGET_VIEW: {"model_id": "gone"}, "text/plain": "fit:   0%|  | 0/1500"}
    nb.cells[1].outputs = [
        new_output("display_data", data={"text/html": inline_plotly}),
        new_output("display_data", data=stateless_bar),
        new_output("display_data", data={build.PLOTLY_MIME: figure, "text/plain": "Figure"}),
    ]
    out = build.for_book(nb, "05_x")
    (output,) = out["cells"][1]["outputs"]
    assert set(output["data"]) == {"text/html", build.PLOTLY_MIME}  # JSON kept for the downloadable notebook
    page = output["data"]["text/html"]
    assert 'id="fig-05-x-1"' in page and "Plotly.newPlot" in page and "height:300px" in page
    assert "<script src" not in page and len(page) < 10_000


def test_site_report_finds_external_urls(tmp_path):
    (tmp_path / "a.html").write_text(
        '<script src="https://cdn.example.org/x.js"></script><img src="_static/y.png">'
    )
    report = build.site_report(tmp_path)
    assert report["external_urls"] == ["https://cdn.example.org/x.js"]
    assert json.dumps(report)
