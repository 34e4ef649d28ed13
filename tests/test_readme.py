"""The README's first-run example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs_and_learns_something():
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)
    history = namespace["history"]
    assert history.loss[-1] < history.loss[0] * 0.7
    metrics = namespace["task"].evaluate(namespace["test_examples"], namespace["samples"])
    assert 0.0 <= metrics["correct"] <= 1.0
