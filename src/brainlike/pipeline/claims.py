"""Claim files with leases: several processes on one output folder split the jobs between them.

Like the lock files of bdpy's ``DistComp`` (``bdpy/distcomp/distcomp.py``: ``<lockdir>/<id>.lock``,
checked and then created), which BHscore's scripts use to share a directory between machines,
but safe against races and against dead processes:

- a claim is created with ``O_CREAT | O_EXCL`` (exactly one process gets it, also over NFS v3+);
  it holds the owner's host, boot id, pid and a random token;
- a heartbeat thread renews the lease of every held claim (touches it) every ``lease_s / 4``;
- a claim expires when its owner is a dead process of this host (checked at once), or when it
  has not been touched for ``lease_s`` seconds of the observer's own clock (so clocks of the
  machines need not agree); an expired claim is taken over by renaming it aside (one taker wins)
  and creating a fresh one;
- a claim is released (removed) after its result file is in place, so a finished job is never
  run again, and a released or taken-over job is seen as done or free by the next look.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from pathlib import Path

import xxhash

log = logging.getLogger("brainlike")


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


class Claims:
    """This process's claims in one folder, renewed by a heartbeat thread while the object is open.

    >>> with Claims(folder, lease_s=60) as claims:          # doctest: +SKIP
    ...     if claims.claim("job-key"):
    ...         ...  # compute, write the result atomically
    ...         claims.release("job-key")
    """

    def __init__(self, folder, lease_s: float = 60.0):
        if not lease_s > 0:
            raise ValueError(f"lease_s must be > 0 seconds; got {lease_s!r}")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.lease_s = float(lease_s)
        self.me = {"host": socket.gethostname(), "boot": _boot_id(), "pid": os.getpid()}
        self._held: dict[str, str] = {}  # claim path -> our token
        self._seen: dict[str, tuple] = {}  # claim path -> (what we saw, since when: monotonic)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.taken_over = 0  # expired claims of others this process took over

    # ----------------------------------------------------------------------------- lifecycle
    def __enter__(self) -> Claims:
        self._thread = threading.Thread(target=self._beat, name="brainlike-claims", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            held = list(self._held)
        for path in held:
            self._remove_own(path)

    def _beat(self) -> None:
        while not self._stop.wait(self.lease_s / 4):
            with self._lock:
                held = dict(self._held)
            for path, token in held.items():
                if self._token(path) != token:
                    log.warning("claim %s was taken over by another process (this one stalled beyond the "
                                "%.0f s lease); its job may run twice, with the same result", path, self.lease_s)
                    with self._lock:
                        self._held.pop(path, None)
                    continue
                try:
                    os.utime(path)
                except OSError:
                    pass

    # ----------------------------------------------------------------------------- claims
    def path(self, key: str) -> str:
        return str(self.folder / f"{xxhash.xxh3_64_hexdigest(key.encode())}.claim")

    @staticmethod
    def _read(path: str) -> dict | None:
        try:
            with open(path, "rb") as fh:
                return json.loads(fh.read() or b"{}")
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # being written, or damaged: judged by its age alone

    def _token(self, path: str):
        rec = self._read(path)
        return None if rec is None else rec.get("token")

    def _create(self, path: str, key: str) -> bool:
        token = secrets.token_hex(8)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        try:
            # no fsync: a claim lost with a machine's power only lets its job run again
            os.write(fd, json.dumps({**self.me, "token": token, "job": key,
                                     "claimed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode())
        finally:
            os.close(fd)
        with self._lock:
            self._held[path] = token
        self._seen.pop(path, None)
        return True

    def _expired(self, path: str, rec: dict) -> bool:
        if rec.get("host") == self.me["host"] and rec.get("boot") == self.me["boot"] and "pid" in rec:
            if rec["pid"] != self.me["pid"] and not _alive(int(rec["pid"])):
                return True
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return False
        seen = (st.st_mtime_ns, st.st_size, rec.get("token"))
        now = time.monotonic()
        prev = self._seen.get(path)
        if prev is None or prev[0] != seen:
            self._seen[path] = (seen, now)
            return False
        return now - prev[1] >= self.lease_s

    def claim(self, key: str) -> bool:
        """Claim ``key``; False while another live process holds it."""
        path = self.path(key)
        if self._create(path, key):
            return True
        rec = self._read(path)
        if rec is None:  # released meanwhile
            return self._create(path, key)
        if not self._expired(path, rec):
            return False
        if not self._remove_expired(path, rec):
            return False
        if self._create(path, key):
            self.taken_over += 1
            log.warning("took over the expired claim of job %s (owner %s pid %s)", key, rec.get("host"),
                        rec.get("pid"))
            return True
        return False

    def _remove_expired(self, path: str, rec: dict) -> bool:
        """Remove the expired claim ``rec`` at ``path``: rename it aside (one process wins), check it
        was that claim (else give it back), delete it. True when the path is free."""
        aside = f"{path}.expired-{secrets.token_hex(4)}"
        try:
            os.replace(path, aside)
        except FileNotFoundError:
            return True
        got = self._read(aside) or {}
        if got.get("token") != rec.get("token"):
            # a fresh claim was made between our look and the rename: give it back
            try:
                os.link(aside, path)
            except OSError:
                pass
            os.unlink(aside)
            return False
        os.unlink(aside)
        self._seen.pop(path, None)
        return True

    def sweep_dead(self) -> int:
        """Remove the claims of dead processes of this machine (a run killed after its job's result was
        written leaves one that no later run would take over, the job being done); return how many."""
        n = 0
        for path in map(str, self.folder.glob("*.claim")):
            rec = self._read(path)
            mine = rec and rec.get("host") == self.me["host"] and rec.get("boot") == self.me["boot"]
            if mine and "pid" in rec and rec["pid"] != self.me["pid"] and not _alive(int(rec["pid"])):
                n += self._remove_expired(path, rec)
        return n

    def release(self, key: str) -> None:
        """Remove our claim of ``key`` (after its result is in place)."""
        self._remove_own(self.path(key))

    def _remove_own(self, path: str) -> None:
        with self._lock:
            token = self._held.pop(path, None)
        if token is not None and self._token(path) == token:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
