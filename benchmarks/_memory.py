"""Peak resident memory of the benchmark process (shared by the bench_*.py scripts)."""

from __future__ import annotations

import threading


class PeakRSS:
    """Sample this process's RSS every 20 ms in a thread; ``.base`` and ``.peak`` in bytes."""

    def __enter__(self):
        import psutil

        self._proc = psutil.Process()
        self.base = self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)
