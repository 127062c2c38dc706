"""``run_experiment`` from a plain script: without ``if __name__ == "__main__":`` it must still work."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from test_shared_folder import _env

TESTS = Path(__file__).resolve().parent


def _script(tmp_path, body: str) -> subprocess.CompletedProcess:
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(body))
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True, cwd=tmp_path, env=_env())


@pytest.mark.parametrize("body, flagged", [
    ("from brainlike.pipeline.spawn import unguarded_main_call as u\nprint(u())\n", "script.py:2"),
    ("from brainlike.pipeline.spawn import unguarded_main_call as u\nif __name__ == '__main__':\n    print(u())\n",
     "None"),
    ("from brainlike.pipeline.spawn import unguarded_main_call as u\ndef main():\n    print(u())\n\n"
     "if '__main__' == __name__:\n    main()\n", "None"),
    ("from brainlike.pipeline.spawn import unguarded_main_call as u\ndef main():\n    print(u())\n\nmain()\n",
     "script.py:5"),
])
def test_unguarded_call_sites_are_found(tmp_path, body, flagged):
    done = _script(tmp_path, body)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(flagged)


def test_unguarded_script_runs_on_the_synchronous_scheduler(tmp_path):
    done = _script(tmp_path, f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        import numpy as np
        from test_pipeline import make_experiment, small_config
        from brainlike.pipeline import run_experiment

        feats, brains = make_experiment(np.random.default_rng(0), n_units=(20, 20, 20, 20))
        cfg = small_config("out", analyses=["decoding"], decoding={{"units_per_layer": 20, "chunk_size": 20}},
                           execution={{"scheduler": "local", "n_workers": 2}})
        res = run_experiment(cfg, brain=brains, features={{"net": feats}}, progress=False)
        print("scheduler", res.summary["scheduler"], "jobs", res.summary["n_run"])
        """)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "scheduler synchronous jobs 16" in done.stdout
    assert "script.py:11 outside `if __name__ == \"__main__\":`" in done.stderr
    assert "Nanny" not in done.stderr
