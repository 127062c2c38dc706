"""Every experiment config shown in README.md and docs/ passes ``brainlike run --check``, and runs.

A ```yaml block with a top-level ``dnns:`` key is an experiment config. Each is written to a
temporary folder and checked with ``brainlike run CONFIG --check`` (which loads the dataset,
traces the models and resolves the layers as a run would). A config that passes is then run
(synchronously, without the report). A block preceded by
``<!-- config-example: needs-data (why) -->`` may fail the check only because a data file is
absent here (the test is then skipped for it, naming the file); any other failure fails the test.
``<!-- config-example: check-only (why) -->`` checks without running (for runs of hours);
``<!-- config-example: after-python (why) -->`` first runs the page's ```python blocks above it (in
the same temporary folder), for a config on files that those blocks write.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from brainlike.cli import main

REPO = Path(__file__).resolve().parents[1]
DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
BLOCK = re.compile(r"(?:<!-- config-example: (needs-data|check-only|after-python)[^>]*-->\s*)?```ya?ml\n(.*?)```",
                   re.S)
PYTHON = re.compile(r"(?:<!-- doc-test: (skip|needs-data)[^>]*-->\s*)?```python\n(.*?)```", re.S)
ABSENT = ("is in neither the mirror", "not found", "No such file")


def _examples():
    out = []
    for doc in DOC_FILES:
        text = doc.read_text()
        for k, m in enumerate(BLOCK.finditer(text)):
            if re.search(r"^dnns:", m.group(2), re.M):
                before = [b.group(2) for b in PYTHON.finditer(text[:m.start()]) if b.group(1) is None]
                out.append(pytest.param(m.group(2), m.group(1), before, id=f"{doc.relative_to(REPO)}#{k}"))
    return out


EXAMPLES = _examples()


def test_the_docs_show_config_examples():
    assert EXAMPLES, "no experiment config (```yaml with dnns:) found in the docs"


@pytest.mark.parametrize("text, mark, python", EXAMPLES)
def test_config_example_checks_and_runs(text, mark, python, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if mark == "after-python":
        namespace: dict = {"__name__": "__doc_example__"}
        for code in python:
            exec(compile(code, "doc-python-block", "exec"), namespace)
    cfg = tmp_path / "experiment.yaml"
    cfg.write_text(text)
    rc = main(["run", str(cfg), "--check"])
    out = capsys.readouterr()
    if rc != 0:
        err = out.err.strip()
        assert err.count("\n") == 0, err  # one line
        if mark == "needs-data" and any(a in err for a in ABSENT):
            pytest.skip(f"data absent here: {err}")
        pytest.fail(f"the docs' config fails --check: {err}")
    assert "config OK" in out.out
    if mark == "check-only":
        return
    assert main(["run", str(cfg), "--out", str(tmp_path / "out"), "--scheduler", "synchronous", "--no-report",
                 "--no-progress"]) == 0, capsys.readouterr().err
    assert (tmp_path / "out").is_dir()
    if mark == "after-python":  # the runnable examples must also score
        from brainlike.pipeline import load_results

        scores = load_results(tmp_path / "out").tables["bh_scores"]
        assert scores["score"].notna().all(), scores
