"""Every example in README.md and docs/*.md runs as written.

```python blocks of one file run in order in one namespace; ```console blocks run
each ``$ brainlike ...`` / ``$ python ...`` line in a shell. Both run in one
temporary folder per file. A block preceded by ``<!-- doc-test: skip (reason) -->``
is skipped (for commands that need a cluster or the network); one preceded by
``<!-- doc-test: needs-data (reason) -->`` runs only where the real-data mirror
(``BRAINLIKE_DATA_MIRROR``) exists, and the file is reported as skipped otherwise.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]  # tutorials included
BLOCK = re.compile(r"(?:<!-- doc-test: (skip|needs-data)[^>]*-->\s*)?```(python|console)\n(.*?)```", re.S)


def _blocks(path: Path):
    """(kind, code, needs_data) of every block that is not marked skip."""
    for m in BLOCK.finditer(path.read_text()):
        if m.group(1) != "skip":
            yield m.group(2), m.group(3), m.group(1) == "needs-data"


def _have_mirror() -> bool:
    mirror = os.environ.get("BRAINLIKE_DATA_MIRROR")
    return bool(mirror) and Path(mirror).is_dir()


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_doc_examples_run(doc: Path, tmp_path, monkeypatch):
    blocks = list(_blocks(doc))
    if not blocks:
        pytest.skip(f"{doc.name} has no runnable examples")
    monkeypatch.chdir(tmp_path)
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    namespace: dict = {"__name__": "__doc_example__"}
    no_data = 0
    for kind, code, needs_data in blocks:
        if needs_data and not _have_mirror():
            no_data += 1
            continue
        if kind == "python":
            exec(compile(code, f"{doc.name}:python-block", "exec"), namespace)
            continue
        for line in code.splitlines():
            if not line.startswith("$ "):
                continue
            cmd = line[2:].strip()
            if shlex.split(cmd)[0] not in ("brainlike", "python"):
                continue
            done = subprocess.run(cmd, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True)
            assert done.returncode == 0, f"{doc.name}: `{cmd}` failed:\n{done.stdout}\n{done.stderr}"
    if no_data:
        pytest.skip(f"{doc.name}: {no_data} example(s) need the real-data mirror (BRAINLIKE_DATA_MIRROR, e.g. "
                    "../shared/data), which is absent here; the other examples ran")
