"""Build the minidiff book: execute the chapters in full mode (cached), then render them with Jupyter Book 1.

    python book/build.py                     # what `make book` runs: execute what changed, build book/_build/html
    python book/build.py --execute-in-place  # also write the full-mode outputs back into tutorials/ for committing
    python book/build.py --no-execute        # render the notebooks' committed outputs as they are (fast)

Steps
1. The chapters are ``tutorials/NN_*.ipynb`` (whatever exists; the table of contents follows them).
2. Each chapter is executed in **full mode** (``MINIDIFF_FAST`` unset) with ``MINIDIFF_WIDGETS=static`` (a live
   ``FigureWidget`` does not survive into static HTML), by nbclient with the running Python as kernel, in parallel
   (``--jobs``, one thread each unless BOOK_THREADS is set). A chapter is skipped when its cache key (its code cells plus every
   source file of ``minidiff/`` and ``widgets/``) matches the last run kept in ``book/_build/executed/``, or the
   committed notebook's own record (written by ``--execute-in-place``) with outputs unchanged since then.
3. The executed notebooks are copied into ``book/_build/src`` with every plotly figure rendered to HTML that calls
   the site's single ``_static/plotly.min.js`` (no per-page copy, no CDN); ``_toc.yml`` is written from the chapters.
4. ``jupyter-book config sphinx`` turns ``book/_config.yml`` into a ``conf.py`` and Sphinx builds
   ``book/_build/html``. Third-party browser code (plotly.js, MathJax, require.js and the ipywidgets HTML manager)
   is vendored into ``book/_vendor`` (npm registry at first build), so the site works offline.
5. A report (per-chapter times, build time, site size, any external URL left in the pages) is printed and saved to
   ``book/_build/build-report.json``.

Committed notebooks never carry widget state (``metadata.widgets``): ``--execute-in-place`` strips it and turns
widget outputs it can read (progress bars) into plain text.
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import copy
import hashlib
import html
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CHAPTER_PATTERN = re.compile(r"^(\d\d)_[A-Za-z0-9_]+\.ipynb$")
META_KEY = "minidiff_book"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PLOTLY_MIME = "application/vnd.plotly.v1+json"

#: Parts of the table of contents: (first chapter number, last chapter number, caption).
PARTS = (
    (0, 0, "Start here"),
    (1, 10, "Diffusion and flows"),
    (11, 14, "Optimizers"),
    (15, 19, "Models"),
    (20, 99, "Systems"),
)
#: npm packages vendored into book/_vendor: name, version, {file in the package: destination in _vendor}.
#: ``static/`` is copied into the site's ``_static``, ``extra/`` into its root: the ipywidgets renderer looks for
#: its icon fonts under ``<page folder>/@jupyter-widgets/html-manager/dist/``.
NPM_VENDOR = (
    ("requirejs", "2.3.8", {"require.js": "static/require.js"}),
    ("mathjax", "3.2.2", {"es5/tex-svg-full.js": "static/mathjax/tex-svg-full.js"}),
    (
        "@jupyter-widgets/html-manager",
        "1.0.15",
        {
            "dist/embed-amd.js": "static/widgets/embed-amd.js",
            "dist/*.woff": "extra/@jupyter-widgets/html-manager/dist/",
            "dist/*.woff2": "extra/@jupyter-widgets/html-manager/dist/",
        },
    ),
)
LIBRARY_DIRS = ("minidiff", "widgets")


# --------------------------------------------------------------------------------------------- chapters
def find_chapters(tutorials: Path) -> list[Path]:
    """``NN_name.ipynb`` files of ``tutorials``, in chapter order."""
    return sorted(p for p in tutorials.glob("*.ipynb") if CHAPTER_PATTERN.match(p.name))


def chapter_number(path: Path) -> int:
    match = CHAPTER_PATTERN.match(path.name)
    if match is None:
        raise ValueError(f"chapter file names look like NN_name.ipynb, got {path.name!r}")
    return int(match.group(1))


def toc_yaml(chapters: list[Path], extra_pages: list[tuple[str, str]] = ()) -> str:
    """``_toc.yml`` for the chapters present, grouped into :data:`PARTS`; ``extra_pages`` are
    ``(caption, file)`` appendices."""
    lines = [
        "# Written by book/build.py from the chapters in tutorials/; do not edit.",
        "format: jb-book",
        "root: index",
    ]
    parts = []
    for first, last, caption in PARTS:
        files = [p.stem for p in chapters if first <= chapter_number(p) <= last]
        if files:
            parts.append((caption, files))
    parts += [(caption, [file]) for caption, file in extra_pages]
    if parts:
        lines.append("parts:")
    for caption, files in parts:
        lines += [f"  - caption: {json.dumps(caption)}", "    chapters:"]
        lines += [f"      - file: {name}" for name in files]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------- cache
def code_digest(nb: dict) -> str:
    """SHA-256 of the code cells, in order (prose and outputs do not change an execution)."""
    digest = hashlib.sha256()
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            digest.update(b"\0cell\0" + _source(cell).encode())
    return digest.hexdigest()


def library_digest(deps: list[str], root: Path = ROOT) -> str:
    """SHA-256 over the library modules a chapter imported (``deps``, paths relative to ``root``) and every data
    file of the library folders (read by code, not imported, so not seen by the import probe)."""
    digest = hashlib.sha256()
    data_files = [
        p
        for folder in LIBRARY_DIRS
        for p in sorted((root / folder).rglob("*"))
        if p.is_file() and p.suffix not in (".py", ".pyc", ".pyo") and "__pycache__" not in p.parts
    ]
    for path in sorted({root / d for d in deps} | set(data_files)):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"<missing>")
    return digest.hexdigest()


def cache_key(nb: dict, library: str) -> str:
    """What an execution depends on: the code cells and the digest of the library code they ran."""
    return hashlib.sha256(f"{code_digest(nb)}:{library}".encode()).hexdigest()


def outputs_digest(nb: dict) -> str:
    outputs = [cell.get("outputs", []) for cell in nb["cells"] if cell["cell_type"] == "code"]
    return hashlib.sha256(json.dumps(outputs, sort_keys=True).encode()).hexdigest()


def is_fresh(nb: dict, source: dict | None = None, *, check_outputs: bool, root: Path = ROOT) -> bool:
    """True when ``nb`` records a full-mode execution of ``source``'s code (default: its own) against the library
    as it is now (the modules it imported then, read again), and, if asked, outputs unchanged since."""
    record = nb.get("metadata", {}).get(META_KEY, {})
    if record.get("mode") != "full" or "deps" not in record:
        return False
    if record.get("key") != cache_key(source or nb, library_digest(record["deps"], root)):
        return False
    return not check_outputs or record.get("outputs") == outputs_digest(nb)


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


# --------------------------------------------------------------------------------------------- execution
def kernel_env(threads: int) -> dict[str, str]:
    """The environment of a full-mode book execution."""
    env = dict(os.environ)
    env.pop("MINIDIFF_FAST", None)
    env.pop("PLOTLY_RENDERER", None)  # headless default: plotly JSON, rendered to HTML by this script
    env["MINIDIFF_WIDGETS"] = "static"
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    return env


def _kernelspec_dir(build: Path) -> Path:
    """A ``python3`` kernelspec running this interpreter, first on ``JUPYTER_PATH`` (like nbval's
    ``--nbval-current-env``): a user-level ``python3`` kernel elsewhere must not run the chapters."""
    jupyter = build / "jupyter"
    spec = jupyter / "kernels" / "python3"
    spec.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"})
    )
    return jupyter


#: Run after a chapter, then removed: which files the kernel imported (the chapter's library dependencies).
IMPORT_PROBE = (
    "import json as _json, sys as _sys\n"
    "print(_json.dumps(sorted({getattr(m, '__file__', None) or '' for m in list(_sys.modules.values())})))"
)


def execute_notebook(src: Path, dest: Path, *, threads: int, timeout: int, jupyter_path: Path) -> float:
    """Execute ``src`` in full mode into ``dest`` (widget state kept for the book) and record there the cache key,
    the library files it imported, the time taken and its slowest cells; returns the seconds taken."""
    import nbformat
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell

    env = kernel_env(threads)
    env["JUPYTER_PATH"] = os.pathsep.join([str(jupyter_path), env.get("JUPYTER_PATH", "")]).rstrip(os.pathsep)
    os.environ.clear()
    os.environ.update(env)  # this runs in a worker process; the kernel inherits its environment
    nb = nbformat.read(src, as_version=4)
    nb.cells.append(new_code_cell(IMPORT_PROBE))
    start = time.perf_counter()
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(src.parent)}},
        store_widget_state=True,
        record_timing=True,
    )
    client.execute()
    seconds = time.perf_counter() - start
    probe = nb.cells.pop()
    imported = json.loads("".join(o.get("text", "") for o in probe.outputs if o.get("name") == "stdout"))
    deps = sorted(
        str(Path(f).resolve().relative_to(ROOT))
        for f in imported
        if f and any(Path(f).resolve().is_relative_to(ROOT / d) for d in LIBRARY_DIRS)
    )
    if (
        not deps
    ):  # the library was not imported from this checkout (not an editable install): depend on all of it
        deps = sorted(str(p.relative_to(ROOT)) for d in LIBRARY_DIRS for p in (ROOT / d).rglob("*.py"))
    nb.metadata[META_KEY] = {
        "key": cache_key(nb, library_digest(deps)),
        "deps": deps,
        "mode": "full",
        "seconds": round(seconds, 1),
        "slowest_cells": _slowest_cells(nb),
    }
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dest)
    return seconds


def _slowest_cells(nb: dict, n: int = 3) -> list[list]:
    """``[[cell index, seconds], ...]`` of the ``n`` slowest cells; drops nbclient's timestamps from the cells."""
    from datetime import datetime

    times = []
    for index, cell in enumerate(nb["cells"]):
        stamps = cell.get("metadata", {}).pop("execution", None) or {}
        begin, end = stamps.get("iopub.execute_input"), stamps.get("shell.execute_reply")
        if begin and end:
            seconds = (
                datetime.fromisoformat(end.rstrip("Z")) - datetime.fromisoformat(begin.rstrip("Z"))
            ).total_seconds()
            times.append([index, round(seconds, 1)])
    return sorted(times, key=lambda t: -t[1])[:n]


def execute_chapters(
    chapters: list[Path], build: Path, *, jobs: int, force: bool, timeout: int
) -> dict[str, dict[str, Any]]:
    """Bring ``build/executed/<chapter>`` up to date; returns per chapter ``{"source", "seconds", "path"}``."""
    import nbformat

    executed = build / "executed"
    jupyter_path = _kernelspec_dir(build)
    status: dict[str, dict[str, Any]] = {}
    todo = []
    for path in chapters:
        nb = nbformat.read(path, as_version=4)
        cached = executed / path.name
        previous = nbformat.read(cached, as_version=4) if cached.exists() else None
        if not force and previous is not None and is_fresh(previous, nb, check_outputs=False):
            seconds = previous.metadata[META_KEY].get("seconds")
            status[path.name] = {"source": "cache", "seconds": seconds, "path": cached}
        elif not force and is_fresh(nb, check_outputs=True):
            cached.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, cached)
            status[path.name] = {
                "source": "committed",
                "seconds": nb.metadata[META_KEY].get("seconds"),
                "path": cached,
            }
        else:
            todo.append(path)
    for name, info in status.items():
        print(f"[book] {name}: up to date ({info['source']})", flush=True)
    if not todo:
        return status
    jobs = max(1, min(jobs, len(todo)))
    # One thread per chapter unless BOOK_THREADS says otherwise: the toy models gain little from more, and on a
    # loaded machine OpenMP threads that wait for a core spin, which made a chapter ~10x slower in our runs.
    threads = int(os.environ.get("BOOK_THREADS", "1"))
    print(
        f"[book] executing {len(todo)} chapter(s) in full mode, {jobs} at a time, {threads} thread(s) each",
        flush=True,
    )
    failures = []
    context = multiprocessing.get_context("fork")
    with futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        running = {
            pool.submit(
                execute_notebook,
                path,
                executed / path.name,
                threads=threads,
                timeout=timeout,
                jupyter_path=jupyter_path,
            ): path
            for path in todo
        }
        for done in futures.as_completed(running):
            path = running[done]
            try:
                seconds = done.result()
            except Exception as err:  # report every failing chapter, then stop
                message = re.sub(r"\x1b\[[0-9;]*m", "", str(err))  # nbclient colours its tracebacks
                failures.append(f"{path.name}: {type(err).__name__}: {message[-2000:]}")
                print(f"[book] {path.name}: FAILED", flush=True)
                continue
            status[path.name] = {
                "source": "executed",
                "seconds": round(seconds, 1),
                "path": executed / path.name,
            }
            slowest = nbformat.read(executed / path.name, as_version=4).metadata[META_KEY]["slowest_cells"]
            cells = ", ".join(f"cell {i}: {t:.0f} s" for i, t in slowest)
            print(f"[book] {path.name}: executed in {seconds:.1f} s (slowest {cells})", flush=True)
    if failures:
        raise SystemExit("chapter execution failed:\n" + "\n".join(failures))
    return status


# --------------------------------------------------------------------------------------------- notebooks out
def widget_text(state: dict, model_id: str) -> str | None:
    """Plain text of a stored widget (a tqdm bar: ``fit: 100% ██████████ 500/500 [00:09<00:00, 52it/s]``), or
    ``None`` when the widget is not one this function can read."""
    model = state.get(model_id)
    if model is None:
        return None
    name, value = model.get("model_name", ""), model.get("state", {})
    if name in ("HBoxModel", "VBoxModel", "BoxModel"):
        parts = [widget_text(state, ref.removeprefix("IPY_MODEL_")) for ref in value.get("children", [])]
        if any(p is None for p in parts):
            return None
        return (" " if name == "HBoxModel" else "\n").join(p for p in parts if p)
    if name in ("HTMLModel", "LabelModel", "HTMLMathModel"):
        text = html.unescape(re.sub(r"<[^>]*>", "", str(value.get("value", ""))))
        return text.replace("\xa0", " ").strip()
    if name in ("FloatProgressModel", "IntProgressModel"):
        low, high, current = value.get("min", 0), value.get("max", 100), value.get("value", 0)
        filled = round(10 * (current - low) / (high - low)) if high > low else 10
        return "█" * max(0, min(10, filled)) + "░" * (10 - max(0, min(10, filled)))
    return None


def for_commit(nb: dict) -> dict:
    """The notebook to commit: widget outputs turned into text where readable, no widget state, and the record
    ``metadata.minidiff_book.outputs`` that lets a later build reuse these outputs."""
    nb = copy.deepcopy(nb)
    state = nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data:
                text = widget_text(state, data[WIDGET_VIEW].get("model_id", ""))
                if text is not None:
                    output["data"] = {"text/plain": text}
    nb.get("metadata", {}).pop("widgets", None)
    if META_KEY in nb.get("metadata", {}):
        nb["metadata"][META_KEY]["outputs"] = outputs_digest(nb)
    return nb


def plotly_html(figure: dict, div_id: str) -> str:
    """A figure's HTML for the book: a div and a ``Plotly.newPlot`` call; plotly.js comes from the page head."""
    import plotly.io as pio

    layout = figure.get("layout", {})
    height = layout.get("height")
    return pio.to_html(
        figure,
        include_plotlyjs=False,
        include_mathjax=False,
        full_html=False,
        validate=False,
        div_id=div_id,
        config={"responsive": True, "displaylogo": False, **figure.get("config", {})},
        default_height=f"{height}px" if height else "480px",
    )


def for_book(nb: dict, name: str) -> dict:
    """The notebook Sphinx renders: each plotly figure gets HTML that uses the site's plotly.js (the page shows
    that; the plotly JSON stays for the notebook a reader downloads); any inline copy of plotly.js (from a
    ``notebook`` renderer) and any widget output whose state was not stored are removed."""
    nb = copy.deepcopy(nb)
    state = nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    count = 0
    for cell in nb["cells"]:
        kept = []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data and data[WIDGET_VIEW].get("model_id") not in state:
                continue  # a widget whose state was not stored shows nothing faithful (a progress bar: "0%")
            if PLOTLY_MIME in data:
                count += 1
                div_id = f"fig-{re.sub(r'[^A-Za-z0-9]+', '-', name)}-{count}"
                data["text/html"] = plotly_html(data[PLOTLY_MIME], div_id)
                data.pop("text/plain", None)
            elif (
                "window.PlotlyConfig" in str(data.get("text/html", ""))
                and len(str(data["text/html"])) > 100_000
            ):
                continue
            kept.append(output)
        if "outputs" in cell:
            cell["outputs"] = kept
    return nb


# --------------------------------------------------------------------------------------------- vendored JS
def vendor(dest: Path) -> None:
    """Fill ``dest`` with plotly.min.js (from the installed plotly, matching the figures' JSON) and the npm
    packages of :data:`NPM_VENDOR` (fetched with ``npm pack`` once; ``dest/VERSIONS.json`` records them)."""
    import plotly

    (dest / "static").mkdir(parents=True, exist_ok=True)
    plotly_js, target = (
        Path(plotly.__file__).parent / "package_data" / "plotly.min.js",
        dest / "static" / "plotly.min.js",
    )
    if not target.exists() or target.stat().st_size != plotly_js.stat().st_size:
        shutil.copyfile(plotly_js, target)
    stamp = dest / "VERSIONS.json"
    wanted = {name: version for name, version, _ in NPM_VENDOR}
    if stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit(
            "npm is needed once to vendor require.js, MathJax and the ipywidgets renderer (apt install npm)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        specs = [f"{name}@{version}" for name, version, _ in NPM_VENDOR]
        run = subprocess.run(
            [npm, "pack", "--silent", *specs], cwd=tmp, capture_output=True, text=True, timeout=300
        )
        if run.returncode != 0:
            raise SystemExit(f"npm pack {' '.join(specs)} failed:\n{run.stderr[-2000:]}")
        tarballs = run.stdout.split()
        for (name, _version, files), tarball in zip(NPM_VENDOR, tarballs):
            with tarfile.open(Path(tmp) / tarball) as tar:
                members = {m.name.removeprefix("package/"): m for m in tar.getmembers() if m.isfile()}
                for pattern, target in files.items():
                    matched = [
                        p for p in members if Path(p).match(pattern) and p.count("/") == pattern.count("/")
                    ]
                    if not matched:
                        raise SystemExit(f"{name}: no file matches {pattern!r} in the npm package")
                    for member in matched:
                        out = dest / target / Path(member).name if target.endswith("/") else dest / target
                        out.parent.mkdir(parents=True, exist_ok=True)
                        with tar.extractfile(members[member]) as fin:
                            out.write_bytes(fin.read())
    stamp.write_text(json.dumps(wanted, indent=1))


# --------------------------------------------------------------------------------------------- site
EXTERNAL_URL = re.compile(
    r"""<(?:script|link|img|iframe)\b[^>]*?\b(?:src|href)=["']((?:https?:)?//[^"']+)""", re.I
)


def site_report(html_dir: Path) -> dict[str, Any]:
    """Size of the site, its pages, and any external URL a page would load (there should be none)."""
    files = [p for p in html_dir.rglob("*") if p.is_file()]
    pages = sorted(p for p in files if p.suffix == ".html")
    external = sorted(
        {
            url
            for page in pages
            for url in EXTERNAL_URL.findall(page.read_text(encoding="utf-8", errors="replace"))
        }
    )
    return {
        "site_bytes": sum(p.stat().st_size for p in files),
        "files": len(files),
        "pages": {str(p.relative_to(html_dir)): p.stat().st_size for p in pages},
        "static_bytes": sum(p.stat().st_size for p in files if "_static" in p.parts),
        "external_urls": external,
    }


def stage(chapters: dict[str, Path], src: Path, vendor_dir: Path, contract: Path | None) -> None:
    """Lay out the Sphinx source folder: config, landing page, extension, vendored JS, notebooks, _toc.yml."""
    import nbformat

    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    for name in ("_config.yml", "index.md"):
        shutil.copyfile(BOOK / name, src / name)
    shutil.copytree(BOOK / "_ext", src / "_ext", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(vendor_dir, src / "_vendor", ignore=shutil.ignore_patterns("VERSIONS.json"))
    for name, path in chapters.items():
        nb = nbformat.read(path, as_version=4)
        nbformat.write(nbformat.from_dict(for_book(nb, Path(name).stem)), src / name)
    extra = []
    if contract is not None and contract.exists():
        shutil.copyfile(contract, src / "chapter_contract.md")
        extra.append(("About the chapters", "chapter_contract"))
    (src / "_toc.yml").write_text(toc_yaml([Path(n) for n in chapters], extra))


CONF_PY_TAIL = """
# Added by book/build.py.
import os, sys  # noqa: E401

# `jupyter-book config sphinx` drops the folder of sphinx.local_extensions from the path.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "_ext"))
# Jupyter Book always loads sphinx-thebe, which declares THEBE_JS_URL twice per page under Sphinx 7 (a page
# error) and points at unpkg.com; this book has no launch buttons.
extensions = [name for name in extensions if name != "sphinx_thebe"]
"""


def sphinx_build(src: Path, out: Path, *, jobs: int) -> float:
    """``jupyter-book config sphinx`` + ``sphinx-build -b html``; returns seconds."""
    bin_dir = Path(sys.executable).parent
    jb = shutil.which("jupyter-book", path=str(bin_dir)) or shutil.which("jupyter-book")
    if jb is None:
        raise SystemExit("jupyter-book (1.x) is not installed: pip install -e '.[book]'")
    start = time.perf_counter()
    subprocess.run([jb, "config", "sphinx", str(src)], check=True, capture_output=True, text=True)
    with open(src / "conf.py", "a", encoding="utf-8") as conf:
        conf.write(CONF_PY_TAIL)
    html_dir = out / "html"
    if html_dir.exists():
        shutil.rmtree(html_dir)
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-j", str(jobs), "-d", str(out / ".doctrees")]
    run = subprocess.run([*cmd, str(src), str(html_dir)], capture_output=True, text=True)
    warnings = [line for line in run.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
    for line in warnings[:30]:
        print(f"[sphinx] {line}", flush=True)
    if run.returncode != 0:
        raise SystemExit(f"sphinx-build failed ({run.returncode}):\n{run.stderr[-4000:]}")
    return time.perf_counter() - start


def write_back(status: dict[str, dict[str, Any]], tutorials: Path) -> list[str]:
    """Copy executed outputs into the notebooks of ``tutorials/`` (their sources stay as they are), without widget
    state; returns the chapters rewritten."""
    import nbformat

    written = []
    for name, info in status.items():
        executed = nbformat.read(info["path"], as_version=4)
        committed = nbformat.read(tutorials / name, as_version=4)
        merged = copy.deepcopy(committed)
        new_code = [c for c in executed.cells if c.cell_type == "code"]
        old_code = [c for c in merged.cells if c.cell_type == "code"]
        if [_source(c) for c in new_code] != [_source(c) for c in old_code]:
            print(f"[book] {name}: code changed since it was executed; not written back", flush=True)
            continue
        for new_cell, old_cell in zip(new_code, old_code):
            old_cell.outputs, old_cell.execution_count = new_cell.outputs, new_cell.execution_count
        merged.metadata.pop("widgets", None)
        if "widgets" in executed.metadata:
            merged.metadata["widgets"] = executed.metadata["widgets"]
        merged.metadata[META_KEY] = dict(executed.metadata[META_KEY])
        merged = nbformat.from_dict(for_commit(merged))
        if merged != committed:
            nbformat.write(merged, tutorials / name)
            written.append(name)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--tutorials", type=Path, default=ROOT / "tutorials", help="folder of NN_*.ipynb chapters"
    )
    parser.add_argument(
        "--out", type=Path, default=BOOK / "_build", help="build folder (html/ ends up inside)"
    )
    parser.add_argument("--jobs", type=int, default=2, help="chapters executed at once (default 2)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell (default 1800)")
    parser.add_argument("--force", action="store_true", help="execute every chapter, ignoring the cache")
    parser.add_argument("--no-execute", action="store_true", help="render the notebooks' current outputs")
    parser.add_argument(
        "--execute-in-place",
        action="store_true",
        help="after executing, write the full-mode outputs back into the tutorials (for committing)",
    )
    args = parser.parse_args(argv)
    if args.no_execute and args.execute_in_place:
        parser.error("--no-execute and --execute-in-place exclude each other")
    start = time.perf_counter()
    tutorials, out = args.tutorials.resolve(), args.out.resolve()
    chapters = find_chapters(tutorials)
    print(
        f"[book] {len(chapters)} chapter(s) in {tutorials}: {', '.join(p.name for p in chapters) or 'none'}"
    )
    if args.no_execute:
        status = {p.name: {"source": "as committed", "seconds": None, "path": p} for p in chapters}
    else:
        status = execute_chapters(chapters, out, jobs=args.jobs, force=args.force, timeout=args.timeout)
    execute_seconds = time.perf_counter() - start
    if args.execute_in_place:
        written = write_back(status, tutorials)
        print(
            f"[book] wrote full-mode outputs into {len(written)} chapter(s): {', '.join(written) or 'none'}"
        )
    vendor(BOOK / "_vendor")
    stage(
        {p.name: status[p.name]["path"] for p in chapters},
        out / "src",
        BOOK / "_vendor",
        tutorials / "README.md",
    )
    sphinx_seconds = sphinx_build(out / "src", out, jobs=args.jobs)
    report = site_report(out / "html")
    report |= {
        "chapters": {name: {k: v for k, v in info.items() if k != "path"} for name, info in status.items()},
        "execute_seconds": round(execute_seconds, 1),
        "sphinx_seconds": round(sphinx_seconds, 1),
        "total_seconds": round(time.perf_counter() - start, 1),
    }
    (out / "build-report.json").write_text(json.dumps(report, indent=1))
    print(
        f"[book] site: {out / 'html' / 'index.html'}\n"
        f"[book] {len(report['pages'])} pages, {report['files']} files, {report['site_bytes'] / 1e6:.1f} MB "
        f"(of which _static {report['static_bytes'] / 1e6:.1f} MB, plotly.js once)\n"
        f"[book] executing {execute_seconds:.0f} s, rendering {sphinx_seconds:.0f} s, "
        f"total {report['total_seconds']:.0f} s"
    )
    if report["external_urls"]:
        print("[book] WARNING: pages reference external URLs:\n  " + "\n  ".join(report["external_urls"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
