"""The reference API in its own process for the bench, so its CPU is not the worker's."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

__all__ = ["RefApiProcess"]


class RefApiProcess:
    """The reference API in its own process (its CPU is not the worker's)."""

    def __init__(self, port: int, latency_ms: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "cdcsync.refapi", "--port", str(port),
               "--latency-ms", str(latency_ms), "--log-level", "WARNING"]  # fmt: skip
        self._log = log.open("ab")  # closed by stop()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/_admin/stats", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"reference API did not start on {self.url}; see {log}")

    def reset(self) -> None:
        """Drop every record, fault and counter (between phases)."""
        httpx.post(f"{self.url}/_admin/reset", timeout=30).raise_for_status()

    def fault(self, **spec: object) -> None:
        """Arm a fault rule (the reference API's ``/_admin/faults``)."""
        httpx.post(f"{self.url}/_admin/faults", json=spec, timeout=30).raise_for_status()

    def clear_faults(self) -> None:
        """Disarm every fault rule."""
        httpx.delete(f"{self.url}/_admin/faults", timeout=30).raise_for_status()

    def requests(self) -> int:
        """The API's own count of ``/api`` requests since the last reset."""
        return int(httpx.get(f"{self.url}/_admin/stats", timeout=30).json()["requests"]["total"])

    def stop(self) -> None:
        """Terminate the process, wait for it and close its log."""
        try:
            self.proc.terminate()
            self.proc.wait(10)
        finally:
            self._log.close()
