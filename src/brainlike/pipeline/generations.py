"""Results generations: a run's tables, scores, provenance and report are published together.

Layout of an output folder ``OUT``::

    OUT/generations/<id>.incomplete/   being written, or left by a run that did not finish: never current
    OUT/generations/<id>/              complete: results/, report/, decodability/, MANIFEST.json
    OUT/current -> generations/<id>    the published generation (a symlink, replaced atomically)
    OUT/results -> current/results     the documented paths, through ``current``
    OUT/report  -> current/report      (a link whose folder the current generation lacks is removed)
    OUT/decodability -> current/decodability

A run writes everything into its own ``<id>.incomplete`` folder, then ``MANIFEST.json`` (size and
xxh3-128 of every file under ``results/`` and ``decodability/``), renames the folder to ``<id>`` and only then swaps
``current``; a crash at any point leaves the previous generation current and complete. Readers
go through :func:`load_results`, which verifies the manifest, so a results folder mixes no runs and
a damaged table is named instead of read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from brainlike._hash import hash_file
from brainlike._io import atomic_write_bytes

log = logging.getLogger("brainlike")

INCOMPLETE = ".incomplete"
MANIFEST = "MANIFEST.json"
TABLES = ("decoding_accuracy", "encoding_accuracy", "bh_scores", "data_quality",
          # an encoding study's (brainlike encode, brainlike.encoding.study)
          "voxel_accuracy", "comparison", "fwrf_fields", "transfer_matrix", "tuning", "synthetic_transfer")
# OUT/<name> -> current/<name>; decoding_accuracy / encoding_accuracy: BHscore's trees (pipeline.bhscore_tree)
LINKED = ("results", "report", "decodability", "decoding_accuracy", "encoding_accuracy")
CHECKED = ("results", "decodability", "decoding_accuracy", "encoding_accuracy")  # folders the manifest lists


class ResultsError(ValueError):
    """A results folder that cannot be read as one complete generation (names the folder or file)."""


@dataclass
class Results:
    """One results generation as read by :func:`load_results`.

    ``tables`` maps ``decoding_accuracy``, ``encoding_accuracy``, ``bh_scores``, ``data_quality`` (an
    encoding study: ``voxel_accuracy``, ``comparison``, ``fwrf_fields``, ``transfer_matrix``, ``tuning``,
    ``synthetic_transfer``) to DataFrames (a table the run did not write is absent); ``provenance``
    is ``provenance.json`` (an encoding study's ``study.json``); ``generation`` is None for a plain folder of tables
    that no brainlike run published (then nothing is verified).
    """

    dir: Path
    tables: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    generation: str | None = None
    manifest: dict | None = None


# ----------------------------------------------------------------------------------------- writing
def _host() -> str:
    return socket.gethostname()


def start_generation(out) -> Path:
    """Create ``OUT/generations/<id>.incomplete/results`` and return the generation folder."""
    gid = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)
    stage = Path(out) / "generations" / f"{gid}{INCOMPLETE}"
    (stage / "results").mkdir(parents=True)
    owner = {"host": _host(), "pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    atomic_write_bytes(stage / "OWNER.json", json.dumps(owner).encode())
    return stage


def mark_failed(stage, error: BaseException) -> None:
    """Record in an unfinished generation why its run stopped (it stays incomplete, never current)."""
    rec = {"error": f"{type(error).__name__}: {error}", "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        atomic_write_bytes(Path(stage) / "FAILED.json", json.dumps(rec).encode())
    except OSError:
        pass


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _manifest(gen: Path, extra: dict) -> dict:
    files = {}
    for p in sorted(q for sub in CHECKED for q in (gen / sub).rglob("*")):
        if p.is_file() and ".tmp-" not in p.name:
            files[p.relative_to(gen).as_posix()] = {"bytes": p.stat().st_size, "xxh3_128": hash_file(p)}
    return {"format": 1, "generation": gen.name.removesuffix(INCOMPLETE), "complete": True,
            "published": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "files": files, **extra}


def publish(out, stage, *, keep: int = 2, **extra) -> Path:
    """Seal ``stage`` (manifest, rename) and make it ``OUT/current``; return the generation folder.

    ``extra`` is recorded in the manifest (e.g. ``analyses``). Complete generations beyond the
    newest ``keep`` (the current one included) and leftovers of dead runs of this host are removed.
    """
    out, stage = Path(out), Path(stage)
    if not stage.name.endswith(INCOMPLETE):
        raise ValueError(f"stage must be a folder made by start_generation; got {stage}")
    man = _manifest(stage, extra)
    atomic_write_bytes(stage / MANIFEST, (json.dumps(man, indent=1, sort_keys=True) + "\n").encode(), fsync=True)
    (stage / "OWNER.json").unlink(missing_ok=True)
    _fsync_dir(stage)
    gen = stage.with_name(man["generation"])
    os.replace(stage, gen)
    _fsync_dir(gen.parent)
    _point(out / "current", Path("generations") / gen.name)
    _fsync_dir(out)
    for name in LINKED:
        _link(out, name, present=(gen / name).is_dir())
    _prune(out, gen, keep)
    return gen


def _point(link: Path, target: Path) -> None:
    """Make ``link`` a symlink to ``target`` in one atomic rename."""
    tmp = link.with_name(f".{link.name}.tmp-{secrets.token_hex(4)}")
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _link(out: Path, name: str, present: bool = True) -> None:
    path = out / name
    want = Path("current") / name
    if path.is_symlink():
        if not present:  # this generation has no such folder: nothing of an earlier one shows
            path.unlink(missing_ok=True)
            return
        if Path(os.readlink(path)) == want:
            return
    elif not present:
        return
    elif path.exists():
        # a folder of an earlier layout: moved aside, never shown as current
        aside = out / f"{name}.before-generations-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
        os.replace(path, aside)
        log.warning("%s: an earlier %s folder (not a published generation) was moved to %s", out, name, aside)
    _point(path, want)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _prune(out: Path, published: Path, keep: int) -> None:
    root = out / "generations"
    current = current_generation(out, missing_ok=True)
    complete = sorted(p for p in root.iterdir() if p.is_dir() and (p / MANIFEST).is_file())
    # the newest `keep` stay, and never a generation newer than the one just published (a
    # concurrent publisher's) or the current one
    for p in complete[: max(0, len(complete) - keep)]:
        if p.name < published.name and p != current:
            shutil.rmtree(p, ignore_errors=True)
    for p in root.glob(f"*{INCOMPLETE}"):
        if (p / "FAILED.json").is_file():
            shutil.rmtree(p, ignore_errors=True)
            continue
        try:
            owner = json.loads((p / "OWNER.json").read_text())
        except (OSError, ValueError):
            continue  # still being created, or not ours to judge
        if owner.get("host") == _host() and not _pid_alive(int(owner.get("pid", -1))):
            shutil.rmtree(p, ignore_errors=True)


# ----------------------------------------------------------------------------------------- reading
def current_generation(out, *, missing_ok: bool = False) -> Path | None:
    """The folder of OUT's published generation (``OUT/current`` resolved)."""
    link = Path(out) / "current"
    if not link.is_symlink() and not link.exists():
        if missing_ok:
            return None
        raise ResultsError(f"{out}: no published results generation (no {link})")
    gen = link.resolve()
    if not (gen / MANIFEST).is_file():
        raise ResultsError(f"{link} points at {gen}, which has no {MANIFEST}: not a complete generation")
    return gen


def _generation_of(path: Path) -> Path | None:
    """The generation folder behind ``path`` (OUT, OUT/results, a generation or its results), if any."""
    path = Path(path)
    if (path / "current").is_symlink():
        return current_generation(path)
    real = path.resolve()
    for cand in (real, real.parent):
        if (cand / MANIFEST).is_file():
            return cand
        if cand.name.endswith(INCOMPLETE) and cand.parent.name == "generations":
            why = ""
            if (cand / "FAILED.json").is_file():
                with contextlib.suppress(OSError, ValueError):
                    why = f": {json.loads((cand / 'FAILED.json').read_text())['error']}"
            raise ResultsError(f"{cand}: an incomplete results generation (its run did not finish{why}); "
                               f"the complete one is {cand.parent.parent / 'current'}")
    if (path / "generations").is_dir():
        stale = sorted(p.name for p in (path / "generations").glob(f"*{INCOMPLETE}"))
        raise ResultsError(f"{path}: no complete results generation yet"
                           + (f" ({', '.join(stale)} did not finish: run again)" if stale else ""))
    return None


def verify(gen) -> dict:
    """Check every file of a generation against its manifest; return the manifest.

    Raises ResultsError naming the first missing, resized or changed file.
    """
    gen = Path(gen)
    try:
        man = json.loads((gen / MANIFEST).read_text())
        files = man["files"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ResultsError(f"{gen / MANIFEST}: unreadable manifest ({e})") from None
    for rel, rec in files.items():
        p = gen / rel
        if not p.is_file():
            raise ResultsError(f"{p}: listed in {gen / MANIFEST} but missing")
        if p.stat().st_size != rec["bytes"] or hash_file(p) != rec["xxh3_128"]:
            raise ResultsError(f"{p}: content differs from {gen / MANIFEST} (damaged or changed after publishing)")
    return man


def _read_table(folder: Path, stem: str):
    import pandas as pd

    for ext, reader in ((".parquet", pd.read_parquet), (".csv", pd.read_csv)):
        p = folder / f"{stem}{ext}"
        if p.is_file():
            return reader(p)
    return None


def load_results(path, *, verify_files: bool = True, staged: bool = False) -> Results:
    """Read the current results generation of a run (``OUT``, ``OUT/results`` or a generation).

    The tables of the generation ``OUT/current`` points at, checked against its manifest: an
    incomplete generation (a run that did not finish) or a file that differs from the manifest
    raises :class:`ResultsError` naming it. A plain folder of tables written by other means
    (``<folder>`` or ``<folder>/results``) is read as it is. ``staged=True`` reads a generation
    still being written (by the run that writes it, for its report) without a manifest.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"results folder not found: {path}")
    gen = None if staged else _generation_of(path)
    man = None
    if gen is not None:
        man = verify(gen) if verify_files else json.loads((gen / MANIFEST).read_text())
        folder = gen / "results"
        present = {Path(rel).name for rel in man["files"]}
    else:
        folder = next((c for c in (path, path / "results") if any(
            (c / f"{t}{e}").is_file() for t in TABLES for e in (".parquet", ".csv"))), None)
        if folder is None:
            raise FileNotFoundError(f"no results tables in {path} or {path / 'results'}: expected some of "
                                    f"{[t + e for t in TABLES for e in ('.parquet', '.csv')]}")
        present = None
    tables = {}
    for stem in TABLES:
        if present is not None and not any(f"{stem}{e}" in present for e in (".parquet", ".csv")):
            continue  # a file the manifest does not list is not part of this generation
        t = _read_table(folder, stem)
        if t is not None:
            tables[stem] = t
    prov = {}
    for name in ("provenance.json", "study.json"):
        if (folder / name).is_file() and (present is None or name in present):
            prov = json.loads((folder / name).read_text())
            break
    return Results(dir=folder, tables=tables, provenance=prov,
                   generation=None if gen is None else gen.name, manifest=man)
