"""Fault test: ``brainlike extract`` killed with SIGKILL at 10 random moments; each rerun gives
features bitwise equal to an uninterrupted run, and no kill leaves a damaged file behind
(only unfinished batches).

One Python process imports torch once and forks one child per run, each running the
``brainlike extract`` command (``brainlike.cli.main``) on a tiny random-weight network; the test
kills the children. This keeps ten kills and reruns within seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from brainlike import features

REPO = Path(__file__).resolve().parents[1]
LAYERS = ["relu1", "fc"]

DRIVER = '''
import os, sys, time
sys.path.insert(0, {src!r})
import numpy as np
import torch
import zarr
import brainlike.cli
import brainlike.features
import brainlike.models as M
import brainlike.stimuli


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)  # the same random weights in every run
        self.conv1 = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.relu1 = torch.nn.ReLU(inplace=True)
        self.pool = torch.nn.AdaptiveAvgPool2d(4)
        self.fc = torch.nn.Linear(8 * 16, 10)

    def forward(self, x):
        if x.shape[0] == 2:  # a batch (not the one-image tracing pass): long enough for kills to land mid-run
            time.sleep({delay})
        return self.fc(torch.flatten(self.pool(self.relu1(self.conv1(x))), 1))


real = M.load
M.load = lambda name, *a, **k: M.wrap(TinyNet(), input_size=32, name="tiny") if name == "tiny" else real(name, *a, **k)
print("ready", flush=True)
for line in sys.stdin:
    pid = os.fork()
    if pid == 0:  # the run: `brainlike extract` on the store named on the line
        log = os.open(line.strip() + ".log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.dup2(log, 1)
        os.dup2(log, 2)
        torch.set_num_threads(1)
        code = brainlike.cli.main(["extract", "--model", "tiny", "--images", {images!r}, "--layers", "relu1", "fc",
                                   "--out", line.strip(), "--batch-size", "2", "--no-progress"])
        sys.stdout.flush()
        os._exit(code)
    print(pid, flush=True)
    _, status = os.waitpid(pid, 0)
    print(status, flush=True)
'''


class Driver:
    def __init__(self, tmp_path, images, delay):
        script = tmp_path / "driver.py"
        script.write_text(textwrap.dedent(DRIVER.format(src=str(REPO / "src"), images=str(images), delay=delay)))
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env)
        assert self.proc.stdout.readline().strip() == "ready"

    def start(self, store) -> int:
        self.proc.stdin.write(f"{store}\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def wait(self) -> int:
        return int(self.proc.stdout.readline())

    def run(self, store) -> None:
        self.start(store)
        status = self.wait()
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, Path(f"{store}.log").read_text()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the driver forks one child per run")
def test_extract_killed_at_10_random_moments_reruns_bitwise_equal(tmp_path, rng):
    from PIL import Image

    images = tmp_path / "imgs"
    images.mkdir()
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(images / f"im{i}.png")
    driver = Driver(tmp_path, images, delay=0.15)
    try:
        t0 = time.perf_counter()
        driver.run(tmp_path / "reference")  # uninterrupted
        duration = time.perf_counter() - t0
        ref = features.FeatureSet.open(tmp_path / "reference")
        ref = {name: np.asarray(ref[name]) for name in LAYERS}
        moments = np.random.default_rng(12).uniform(0.0, 0.8 * duration, size=10)  # kills land before the end
        killed = interrupted = 0
        for k, moment in enumerate(moments):
            store = tmp_path / f"run{k}"
            pid = driver.start(store)
            time.sleep(moment)
            os.kill(pid, signal.SIGKILL)
            status = driver.wait()
            killed += os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
            if (store / "zarr.json").is_file():
                state = features.verify(store)
                assert state.problems == [], f"kill at {moment:.2f} s left damage: {state.problems}"
                interrupted += bool(state.unfinished)
            driver.run(store)  # the rerun resumes
            fs = features.FeatureSet.open(store)
            for name in LAYERS:
                assert np.array_equal(np.asarray(fs[name]), ref[name]), f"kill at {moment:.2f} s, layer {name}"
        assert killed >= 8 and interrupted >= 3, (killed, interrupted, moments, duration)
    finally:
        driver.close()
