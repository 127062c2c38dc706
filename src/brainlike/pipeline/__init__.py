"""Experiments as configs, run as a graph of resumable jobs, locally or on a Dask cluster.

>>> from brainlike.pipeline import load_config, run_experiment   # doctest: +SKIP
>>> result = run_experiment("experiment.yaml")                    # doctest: +SKIP
>>> results = load_results(result.out)                            # doctest: +SKIP
"""

from .check import CheckReport, check_experiment
from .config import DNN, Experiment, load_config, read_config_file, validate
from .execute import run_jobs
from .generations import Results, ResultsError, load_results
from .jobs import Job, plan, run_job
from .run import RunResult, run_experiment

__all__ = ["CheckReport", "DNN", "Experiment", "Job", "Results", "ResultsError", "RunResult", "check_experiment",
           "load_config", "load_results", "plan", "read_config_file", "run_experiment", "run_job", "run_jobs", "validate"]
