"""Local resolution, verification and download of registry files.

Order for each file: the offline mirror (``BRAINLIKE_DATA_MIRROR``, never the network when set),
then the data home (``BRAINLIKE_DATA``, default ``~/.cache/brainlike``), then a download with
pooch into the data home. Downloads go to a ``.part`` file that is resumed with an HTTP range
request after an interruption; pooch checks the SHA-256 of the finished temporary file and only
then moves it under its final name, so a half file is never read back as complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "RemoteFile",
    "ChecksumError",
    "DataNotAvailableError",
    "data_home",
    "mirror_dir",
    "file_sha256",
    "resolve_file",
]

_CHUNK = 1 << 20
log = logging.getLogger("brainlike")


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset.

    ``path`` is relative to the data home and to the mirror (same layout). ``sha256`` None means
    the checksum is not known in advance: it is recorded on first download and verified afterwards.
    ``url`` None means the file cannot be downloaded automatically (``note`` says how to get it).
    """

    path: str
    url: str | None
    sha256: str | None = None
    note: str = ""


class ChecksumError(ValueError):
    """A file's SHA-256 differs from the registry's (message names the file and both hashes)."""


class DataNotAvailableError(FileNotFoundError):
    """A file is neither in the mirror nor in the data home and cannot be downloaded here."""


def data_home() -> Path:
    """``BRAINLIKE_DATA`` or ``~/.cache/brainlike``."""
    env = os.environ.get("BRAINLIKE_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "brainlike"


def mirror_dir() -> Path | None:
    """``BRAINLIKE_DATA_MIRROR`` (an offline folder laid out like the data home) or None."""
    env = os.environ.get("BRAINLIKE_DATA_MIRROR")
    return Path(env).expanduser() if env else None


# Hashes of files already verified in this process, keyed by (path, size, mtime_ns): a file is
# hashed once per change, not once per load.
_VERIFIED: dict[tuple[str, int, int], str] = {}
_LOCK = threading.Lock()


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file (memoised per path, size and modification time)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    with _LOCK:
        if key in _VERIFIED:
            return _VERIFIED[key]
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    digest = h.hexdigest()
    with _LOCK:
        _VERIFIED[key] = digest
    return digest


def _recorded_path(home: Path) -> Path:
    return home / ".brainlike-checksums.json"


class _DamagedRecord(ValueError):
    pass


def _read_record(home: Path) -> dict:
    """The checksum record {relative path: sha256}; ``_DamagedRecord`` when it cannot be trusted."""
    p = _recorded_path(home)
    if not p.is_file():
        return {}
    try:
        data = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise _DamagedRecord(f"{p} is not readable JSON ({err})") from err
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v)
        for k, v in data.items()
    ):
        raise _DamagedRecord(f"{p} is not a mapping of file names to SHA-256 digests")
    return data


def _recorded(home: Path) -> dict:
    """The record, or an empty one after moving a damaged record aside (with a warning naming it).

    With the record gone, every file it covered is verified from scratch (``resolve_file``).
    """
    try:
        return _read_record(home)
    except _DamagedRecord as err:
        p = _recorded_path(home)
        aside = p.with_name(f"{p.name}.damaged-{os.getpid()}-{threading.get_ident()}")
        try:
            os.replace(p, aside)
        except FileNotFoundError:  # another process moved it first
            pass
        log.warning("checksum record damaged: %s; moved aside to %s. Files it covered are verified from "
                    "scratch (downloaded again and compared).", err, aside.name)
        return {}


def _record(home: Path, rel: str, digest: str) -> None:
    from brainlike._io import atomic_write

    p = _recorded_path(home)
    with _file_lock(p.with_name(p.name + ".lock")):
        data = _recorded(home)
        data[rel] = digest
        atomic_write(p, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=1, sort_keys=True)), fsync=True)


def verify(path: Path, expected: str | None, label: str) -> str:
    """Hash ``path``; raise ``ChecksumError`` naming the file and both hashes on mismatch."""
    digest = file_sha256(path)
    if expected is not None and digest != expected.lower():
        raise ChecksumError(
            f"checksum mismatch for {label} ({path}): expected SHA-256 {expected.lower()}, got {digest}. "
            "The file is corrupt, truncated or a different version; delete it and fetch again."
        )
    return digest


class ResumableDownloader:
    """pooch downloader that keeps a ``.part`` file and resumes it with an HTTP Range request."""

    def __init__(self, progressbar: bool = False, timeout: float = 60.0):
        self.progressbar = progressbar
        self.timeout = timeout

    def part_path(self, url: str, directory: Path) -> Path:
        return directory / f".{hashlib.sha1(url.encode()).hexdigest()[:16]}.part"

    def __call__(self, url, output_file, pooch_obj=None, check_only=False):
        import requests

        if check_only:
            return requests.head(url, allow_redirects=True, timeout=self.timeout).ok
        out = Path(output_file if isinstance(output_file, (str, os.PathLike)) else output_file.name)
        part = self.part_path(url, out.parent)
        have = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        with requests.get(url, headers=headers, stream=True, timeout=self.timeout, allow_redirects=True) as r:
            if r.status_code == 416:  # nothing left to fetch: the .part is complete
                pass
            else:
                r.raise_for_status()
                mode = "ab" if (have and r.status_code == 206) else "wb"
                total = r.headers.get("Content-Length")
                bar = None
                if self.progressbar:
                    from brainlike._logging import progress_bar

                    bar = progress_bar(
                        total=(int(total) + (have if mode == "ab" else 0)) if total else None,
                        initial=have if mode == "ab" else 0,
                        unit="B",
                        unit_scale=True,
                        desc=out.name,
                    )
                with open(part, mode) as f:
                    for block in r.iter_content(chunk_size=1 << 16):  # small blocks: little lost on a cut
                        f.write(block)
                        if bar is not None:
                            bar.update(len(block))
                if bar is not None:
                    bar.close()
        os.replace(part, out)


def _download(rf: RemoteFile, dest: Path, progress: bool) -> None:
    import pooch

    dest.parent.mkdir(parents=True, exist_ok=True)
    known = f"sha256:{rf.sha256}" if rf.sha256 else None
    try:
        pooch.retrieve(
            rf.url,
            known_hash=known,
            fname=dest.name,
            path=dest.parent,
            downloader=ResumableDownloader(progressbar=progress),
            progressbar=False,
        )
    except ValueError as err:  # pooch's hash mismatch: the temporary file was removed
        if "hash" in str(err).lower():
            raise ChecksumError(f"checksum mismatch for {rf.path} downloaded from {rf.url}: {err}") from err
        raise
    except OSError as err:  # no network, DNS failure, refused connection, HTTP error (requests' errors are OSErrors)
        raise DataNotAvailableError(
            f"could not download {rf.path} from {rf.url} ({type(err).__name__}); a partial download is kept "
            f"beside it and resumed next time. Offline, set BRAINLIKE_DATA_MIRROR to a folder holding {rf.path}"
        ) from err


def resolve_in_folder(rf: RemoteFile, folder) -> Path:
    """A registry file in a user's own folder (their download, laid out as published): found under
    its registry path, under that path less its first folder (``folder`` is then the dataset's own
    root, e.g. the NSD root holding ``nsddata/``), or by its file name at the top; verified against
    the registry's SHA-256 where one is known. Nothing is downloaded."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"data_dir: {folder} is not a folder")
    rel = Path(rf.path)
    # the registry path, the same without the registry's own top folder (e.g. nsd/), or the bare name
    for cand in (folder / rel, folder.joinpath(*rel.parts[1:]) if len(rel.parts) > 1 else folder / rel,
                 folder / rel.name):
        if cand.is_file():
            verify(cand, rf.sha256, rf.path)
            return cand
    raise DataNotAvailableError(f"data_dir {folder}: {Path(rf.path).name} not found (looked for {folder / rf.path} "
                                f"and {folder / Path(rf.path).name})" + (f"; {rf.note}" if rf.note else ""))


def resolve_file(rf: RemoteFile, *, download: bool = True, progress: bool = True) -> Path:
    """Local path of a registry file, verified against its SHA-256 (see module docstring)."""
    mirror = mirror_dir()
    home = data_home()
    if mirror is not None:
        cand = mirror / rf.path
        if cand.is_file():
            verify(cand, rf.sha256, rf.path)
            return cand
    cand = home / rf.path
    if cand.is_file():
        expected = rf.sha256 or _recorded(home).get(rf.path)
        if expected is None:  # never downloads while the offline mirror is set
            expected = _verify_from_scratch(rf, cand, home, download=download and mirror is None, progress=progress)
        verify(cand, expected, rf.path)
        return cand
    where = f"mirror {mirror} nor data home {home}" if mirror is not None else f"data home {home}"
    if mirror is not None:
        raise DataNotAvailableError(
            f"{rf.path} is in neither the {where}; BRAINLIKE_DATA_MIRROR is set, so nothing is downloaded"
            + (f" (source: {rf.url})" if rf.url else "")
        )
    if rf.url is None or not download:
        how = rf.note or "it has no public download URL"
        raise DataNotAvailableError(f"{rf.path} is not in the {where}: {how}")
    with _file_lock(cand.with_name(f".{cand.name}.lock")):
        if not cand.is_file():  # another process may have finished it while we waited
            _download(rf, cand, progress)
        expected = rf.sha256 or _recorded(home).get(rf.path)
        digest = verify(cand, expected, rf.path)
        if expected is None:
            _record(home, rf.path, digest)
    return cand


def _verify_from_scratch(rf: RemoteFile, local: Path, home: Path, *, download: bool, progress: bool) -> str:
    """The checksum of a data-home file that no registry or record vouches for (record lost or damaged).

    A file with a URL is downloaded again and its checksum is the fresh copy's: the local copy must
    match it. A file without one (placed by hand) cannot be compared: its checksum is recorded
    from now on, with a warning.
    """
    if rf.url is None:
        digest = file_sha256(local)
        log.warning("%s has no recorded checksum and no source to compare with; recording its current SHA-256 "
                    "%s (later changes will be detected)", local, digest)
        _record(home, rf.path, digest)
        return digest
    if not download:
        raise DataNotAvailableError(f"{local} has no recorded checksum (the record {_recorded_path(home)} is "
                                    "missing or was damaged) and may not be downloaded here to verify it "
                                    "(offline mirror set, or download=False)")
    scratch = home / ".verify" / f"{os.getpid()}-{threading.get_ident()}"
    try:
        try:
            _download(rf, scratch / Path(rf.path).name, progress)
        except DataNotAvailableError as err:
            raise DataNotAvailableError(
                f"{local} has no recorded checksum (the record {_recorded_path(home)} is missing or was damaged) "
                f"and cannot be verified from scratch: {err}") from err
        digest = file_sha256(scratch / Path(rf.path).name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if file_sha256(local) == digest:
        _record(home, rf.path, digest)
        log.info("%s verified from scratch against %s", rf.path, rf.url)
    return digest


class _file_lock:
    """Exclusive advisory lock (POSIX flock) so that two processes never append to one .part file."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.path, "a+")
        try:
            import fcntl

            fcntl.flock(self.fh.fileno(), fcntl.LOCK_EX)
        except ImportError:  # no flock on this platform: pooch's hash check still guards the result
            pass
        return self

    def __exit__(self, *exc):
        self.fh.close()  # closing releases the lock
        return False
