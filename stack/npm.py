"""npm packages pinned by version, installed once into the cache and reused by every run.

``install("directus", "12.4.0", settings)`` leaves the package under
``<cache>/npm/directus-12.4.0/node_modules`` and returns that folder's root; a
second call (any process) finds the marker and returns at once. Installs run
into a ``.partial`` folder renamed into place when npm succeeded, under a file
lock, so an interrupted or concurrent install never leaves a half tree behind.
npm's output goes to ``<home>/logs/npm-<package>.log``.
"""

from __future__ import annotations

import fcntl
import json
import logging
import shutil
import subprocess
import time
from pathlib import Path

from cdcsync.errors import StackError
from cdcsync.stack.processes import Progress, tail
from cdcsync.stack.settings import StackSettings

__all__ = ["install", "install_dir", "installed", "node_bin"]

log = logging.getLogger(__name__)

_MARKER = ".cdcsync-installed"


def node_bin(name: str = "node") -> str:
    """The path of ``node`` or ``npm``; a StackError saying what to install when missing."""
    found = shutil.which(name)
    if found is None:
        raise StackError(
            f"{name} not found on PATH: the real API servers of the tests (json-server, "
            "Directus) run on Node.js 20+; install nodejs and npm (scripts/install-deps.sh)"
        )
    return found


def install_dir(package: str, version: str, settings: StackSettings) -> Path:
    """Where ``package@version`` lives in the cache (installed or not)."""
    return settings.cache / "npm" / f"{package.replace('/', '+')}-{version}"


def installed(package: str, version: str, settings: StackSettings) -> bool:
    """True if ``package@version`` is installed completely in the cache."""
    root = install_dir(package, version, settings)
    return (root / _MARKER).is_file() and (root / "node_modules" / package).is_dir()


def install(
    package: str, version: str, settings: StackSettings, progress: Progress = print
) -> Path:
    """Install ``package@version`` into the cache unless it is there; its folder."""
    root = install_dir(package, version, settings)
    if installed(package, version, settings):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with (root.parent / f"{root.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be installing it right now
        if installed(package, version, settings):
            return root
        _install_locked(package, version, root, settings, progress)
    return root


def _install_locked(
    package: str, version: str, root: Path, settings: StackSettings, progress: Progress
) -> None:
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    (partial / "package.json").write_text(
        json.dumps({"name": f"cdcsync-{root.name}", "private": True}) + "\n"
    )
    log_path = settings.logs_dir / f"npm-{package.replace('/', '+')}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    progress(f"npm: installing {package}@{version} into {root} (log {log_path})")
    started = time.monotonic()
    argv = [
        node_bin("npm"), "install", "--no-audit", "--no-fund", "--no-update-notifier",
        "--save-exact", f"{package}@{version}",
    ]  # fmt: skip
    with log_path.open("ab") as out:
        out.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
        out.flush()
        result = subprocess.run(
            argv,
            cwd=partial,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
            timeout=settings.start_timeout * 10,
        )
    if result.returncode != 0 or not (partial / "node_modules" / package).is_dir():
        raise StackError(
            f"npm install {package}@{version} failed (exit {result.returncode}); "
            f"see {log_path}\n{tail(log_path)}".rstrip()
        )
    elapsed = time.monotonic() - started
    (partial / _MARKER).write_text(f"{package}@{version} installed in {elapsed:.0f}s\n")
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)
    progress(f"npm: {package}@{version} installed in {elapsed:.0f}s")
