"""``brainlike run`` in a process of its own, on the synthetic planted-hierarchy data of
test_pipeline (fixed seed), for the tests that start, kill and race whole runs.

    python run_driver.py CONFIG.json [brainlike run options]

The data are built in memory (same seed, same bytes every time) and handed to the command's
``run_experiment``; everything else is the command as a user runs it. The command's stdout and
stderr go to this process's, so a test reads the job counts from them. With the environment
variable ``BARRIER=<folder>``, the process writes ``<folder>/ready-<pid>`` once its imports are
done and waits for ``<folder>/go`` (several processes start their runs at the same moment).
"""

from __future__ import annotations

import functools
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str]) -> int:
    from test_pipeline import make_experiment

    import brainlike.pipeline as P
    from brainlike.cli import main as cli

    feats, brains = make_experiment(np.random.default_rng(0), n_units=(60, 50, 40, 30))
    P.run_experiment = functools.partial(P.run_experiment, brain=brains, features={"net": feats})
    barrier = os.environ.get("BARRIER")
    if barrier:
        Path(barrier, f"ready-{os.getpid()}").write_text("")
        while not Path(barrier, "go").exists():
            time.sleep(0.01)
    return cli(["run", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
