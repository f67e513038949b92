"""Fetch the pinned Kafka, Connect and Debezium jars from Maven Central into the cache, once."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from cdcsync.errors import StackError
from cdcsync.stack.processes import Progress, tail
from cdcsync.stack.settings import (
    DEBEZIUM_VERSION,
    KAFKA_VERSION,
    SLF4J_VERSION,
    StackSettings,
)

__all__ = [
    "COMPLETE_MARKER",
    "ensure_all",
    "ensure_connect_libs",
    "ensure_debezium_plugin",
    "ensure_kafka_libs",
    "is_complete",
    "pom_path",
]

log = logging.getLogger(__name__)

#: Written last, inside the staged folder, before it is renamed into place.
COMPLETE_MARKER = ".complete"


def pom_path(kind: str) -> Path:
    """The packaged pom for kind: kafka, connect or debezium (stack/maven/<kind>-pom.xml)."""
    return Path(str(resources.files("cdcsync.stack").joinpath("maven", f"{kind}-pom.xml")))


def is_complete(folder: Path) -> bool:
    """True if folder holds a finished fetch (its marker exists)."""
    return (folder / COMPLETE_MARKER).is_file()


@contextmanager
def _cache_lock(final: Path) -> Iterator[None]:
    """Serialise fetches of one folder across processes (different folders run in parallel)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    with (final.parent / f".{final.name}.lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _mvn() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("Maven (mvn) is not on PATH; install it (apt-get install maven)")
    return mvn


def _fetch(
    *,
    final: Path,
    kind: str,
    goal: str,
    props: dict[str, str],
    output_props: tuple[str, ...] = ("outputDirectory",),
    label: str,
    settings: StackSettings,
    progress: Progress,
    layout: Callable[[Path], Path],
) -> Path:
    """Run one Maven goal into a staging folder, mark it complete, then rename it to final."""
    if is_complete(final):
        return final
    with _cache_lock(final):
        if is_complete(final):  # another process finished it while we waited
            return final
        progress(f"fetching {label} with Maven (first run only)…")
        started = time.monotonic()
        for stale in final.parent.glob(f".staging-{final.name}-*"):  # a killed earlier fetch
            shutil.rmtree(stale, ignore_errors=True)
        staging = final.parent / f".staging-{final.name}-{os.getpid()}"
        work = staging / ".maven"
        work.mkdir(parents=True)
        shutil.copyfile(pom_path(kind), work / "pom.xml")
        output = layout(staging)
        settings.logs_dir.mkdir(parents=True, exist_ok=True)
        log_path = settings.logs_dir / f"maven-{kind}.log"
        argv = _maven_argv(work, goal, props, {key: output for key in output_props})
        try:
            _run_maven(argv, cwd=work, log_path=log_path, label=label)
            shutil.rmtree(work)
            _promote(staging, final, label)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        progress(f"fetched {label} in {time.monotonic() - started:.1f}s into {final}")
        return final


def _maven_argv(
    work: Path, goal: str, props: dict[str, str], outputs: dict[str, Path]
) -> Sequence[str]:
    """The ``mvn`` command line for one goal on the pom in ``work``, writing into ``outputs``."""
    return [
        _mvn(),
        "-B",
        "--no-transfer-progress",
        "-f",
        str(work / "pom.xml"),
        goal,
        # A private local repository: parallel fetches never share (and corrupt) ~/.m2;
        # it is deleted with the staging folder, the jars stay in the cache.
        f"-Dmaven.repo.local={work / 'repository'}",
        *(f"-D{key}={value}" for key, value in props.items()),
        *(f"-D{key}={output}" for key, output in outputs.items()),
    ]


def _run_maven(argv: Sequence[str], *, cwd: Path, log_path: Path, label: str) -> None:
    """Run Maven with its output appended to ``log_path``; a failure names the log to read."""
    log.info("running %s", " ".join(argv))
    with log_path.open("ab") as out:
        out.write(f"\n--- {time.strftime('%H:%M:%S')} {label}\n".encode())
        out.flush()
        result = subprocess.run(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        raise StackError(
            f"Maven could not fetch {label} (exit {result.returncode}); see {log_path}. "
            "Check access to Maven Central (proxy settings go in ~/.m2/settings.xml).\n"
            + tail(log_path, 8)
        )


def _promote(staging: Path, final: Path, label: str) -> None:
    """Mark the staged fetch complete and rename it into place, so a half fetch never shows."""
    (staging / COMPLETE_MARKER).write_text(f"{label}\n")
    if final.exists():  # an incomplete leftover from an interrupted older layout
        shutil.rmtree(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(final)


def ensure_kafka_libs(settings: StackSettings, progress: Progress = print) -> Path:
    """Broker jars (kafka_2.13 + slf4j-reload4j) in <cache>/kafka-<ver>/libs."""
    _fetch(
        final=settings.kafka_libs.parent,
        kind="kafka",
        goal="dependency:copy-dependencies",
        props={"kafka.version": KAFKA_VERSION, "slf4j.version": SLF4J_VERSION},
        label=f"Kafka {KAFKA_VERSION} jars",
        settings=settings,
        progress=progress,
        layout=lambda staging: staging / "libs",
    )
    return settings.kafka_libs


def ensure_connect_libs(settings: StackSettings, progress: Progress = print) -> Path:
    """Connect runtime jars (connect-runtime, connect-json, slf4j-reload4j) in their own folder."""
    _fetch(
        final=settings.connect_libs.parent,
        kind="connect",
        goal="dependency:copy-dependencies",
        props={"kafka.version": KAFKA_VERSION, "slf4j.version": SLF4J_VERSION},
        label=f"Kafka Connect {KAFKA_VERSION} jars",
        settings=settings,
        progress=progress,
        layout=lambda staging: staging / "libs",
    )
    return settings.connect_libs


def ensure_debezium_plugin(settings: StackSettings, progress: Progress = print) -> Path:
    """Debezium PostgreSQL plugin unpacked under <cache>/connect-plugins; returns plugin.path."""
    _fetch(
        final=settings.plugin_path,
        kind="debezium",
        goal="dependency:unpack",
        props={"debezium.version": DEBEZIUM_VERSION},
        output_props=("plugins.dir",),
        label=f"Debezium PostgreSQL connector {DEBEZIUM_VERSION}",
        settings=settings,
        progress=progress,
        layout=lambda staging: staging,
    )
    return settings.plugin_path


def ensure_all(settings: StackSettings, progress: Progress = print) -> None:
    """Every jar the stack needs, fetched in parallel; instant when the cache is complete."""
    steps = (ensure_kafka_libs, ensure_connect_libs, ensure_debezium_plugin)
    with ThreadPoolExecutor(max_workers=len(steps), thread_name_prefix="maven") as pool:
        futures = [pool.submit(step, settings, progress) for step in steps]
    for future in futures:
        future.result()
