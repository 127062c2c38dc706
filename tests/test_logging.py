"""House rules for messages and figures: the "brainlike" logger (shown by the CLI), progress bars that
follow it, no stderr prints and no matplotlib.use in library code, one plotting helper."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from brainlike._logging import cli_logging, progress_bar, progress_enabled

SRC = Path(__file__).resolve().parents[1] / "src" / "brainlike"


def test_cli_shows_info_messages_and_restores_the_logger(capsys):
    log = logging.getLogger("brainlike")
    before = (log.level, list(log.handlers))
    with cli_logging(logging.INFO):
        log.info("z-scoring: %d of %d units", 2, 5)
        log.debug("not shown")
    err = capsys.readouterr().err
    assert "[brainlike] z-scoring: 2 of 5 units" in err and "not shown" not in err
    assert (log.level, list(log.handlers)) == before


def test_cli_main_shows_library_info(capsys, monkeypatch):
    from brainlike import cli

    def fake(args):
        logging.getLogger("brainlike").info("step reached")
        return 0

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    args = parser.parse_args(["datasets", "list"])
    monkeypatch.setattr(parser, "parse_args", lambda argv=None: args)
    monkeypatch.setattr(args, "func", fake)
    assert cli.main(["datasets", "list"]) == 0
    assert "[brainlike] step reached" in capsys.readouterr().err


def test_progress_bars_follow_the_logger_level():
    log = logging.getLogger("brainlike")
    old = log.level
    try:
        log.setLevel(logging.NOTSET)
        assert progress_enabled(True) and not progress_enabled(False)
        log.setLevel(logging.WARNING)
        assert not progress_enabled(True)
        bar = progress_bar(range(3), enabled=True)
        assert bar.disable and list(bar) == [0, 1, 2]
    finally:
        log.setLevel(old)


def test_library_code_neither_prints_to_stderr_nor_switches_backend():
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        for k, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(r"matplotlib\.use\(|import matplotlib\.pyplot|from matplotlib import pyplot", code) and rel != "_plotting.py":
                bad.append(f"{rel}:{k}: {line.strip()}")
            if re.search(r"file=sys\.stderr|sys\.stderr\.write", code) and not rel.startswith("cli/") \
                    and rel not in {"_logging.py", "__main__.py"}:
                bad.append(f"{rel}:{k}: {line.strip()}")
    assert not bad, "library code printing to stderr or using pyplot / matplotlib.use:\n" + "\n".join(bad)


def test_plotting_helper_writes_png_without_pyplot(tmp_path):
    import sys

    from brainlike._plotting import save_png, subplots

    fig, ax = subplots(figsize=(2, 2))
    ax.plot(np.arange(3), np.arange(3))
    out = save_png(fig, tmp_path / "f.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "matplotlib.pyplot" not in sys.modules or fig.canvas.manager is None
