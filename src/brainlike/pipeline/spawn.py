"""Whether the default ``local`` scheduler may start worker processes from the calling script.

Dask's ``LocalCluster`` starts its workers with ``multiprocessing``'s *spawn*: each worker imports
the main script again. A script that calls ``run_experiment`` at its top level, without
``if __name__ == "__main__":``, would start the run again in every worker ("Nanny failed to
start"). brainlike looks at the call site before starting a cluster: from such an unguarded line
it runs the jobs on the ``synchronous`` scheduler in this process instead, with a warning that
says how to get the worker processes back. Notebooks, ``python -c``, the CLI and guarded scripts
are not affected.
"""

from __future__ import annotations

import ast
import logging
import multiprocessing
import sys

log = logging.getLogger("brainlike")


def _guarded_lines(source: str) -> list[tuple[int, int]]:
    """Line ranges of the bodies of ``if __name__ == "__main__":`` blocks at the top level."""
    spans = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare):
            t = node.test
            names = [t.left, *t.comparators]
            if (len(names) == 2 and isinstance(t.ops[0], ast.Eq)
                    and any(isinstance(n, ast.Name) and n.id == "__name__" for n in names)
                    and any(isinstance(n, ast.Constant) and n.value == "__main__" for n in names)):
                spans.append((node.body[0].lineno, node.body[-1].end_lineno or node.body[-1].lineno))
    return spans


def unguarded_main_call() -> str | None:
    """``"file:line"`` when this call comes from top-level code of a ``__main__`` script outside
    an ``if __name__ == "__main__":`` block (code that spawned workers would run again); else None."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or not path:
        return None  # interactive, notebook, python -c: workers do not re-run anything
    spec_name = getattr(getattr(main, "__spec__", None), "name", None) or ""
    if spec_name.endswith(".__main__"):
        return None  # python -m package: multiprocessing does not import a package's __main__ again
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals is main.__dict__:
            try:
                with open(path, encoding="utf-8") as fh:
                    spans = _guarded_lines(fh.read())
            except (OSError, SyntaxError, ValueError):
                return None
            line = frame.f_lineno
            return None if any(a <= line <= b for a, b in spans) else f"{path}:{line}"
        frame = frame.f_back
    return None


def check_spawn_safe(scheduler: str) -> str:
    """The scheduler to use: ``"synchronous"`` instead of ``"local"`` from an unguarded script."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise RuntimeError("run_experiment was called while a worker process imported the main script: put the "
                           "call under `if __name__ == \"__main__\":` (Dask workers import the script again)")
    if scheduler != "local":
        return scheduler
    where = unguarded_main_call()
    if where is None:
        return scheduler
    log.warning("run_experiment called at %s outside `if __name__ == \"__main__\":`: the jobs run on the "
                "'synchronous' scheduler in this process (worker processes would run the script again); "
                "put the call under the guard to use the 'local' Dask cluster", where)
    return "synchronous"
