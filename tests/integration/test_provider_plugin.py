"""A third-party provider, installed by its entry point and nothing else, is found and built.

Two throwaway distributions are written into ``tmp_path`` and installed with pip
into private target folders (never the interpreter's site-packages): ``acme``, a
working provider, and ``acme-broken``, whose entry points point at a missing
module, at an object that is not a ``Provider`` and at a provider that calls
itself by another name. A fresh interpreter with those folders on ``PYTHONPATH``
then lists, loads and uses the providers exactly as a worker would.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest

from cdcsync.sinks.registry import ENTRY_POINT_GROUP, SinkRegistry

VERSION = "0.1.0"

ACME_MODULE = '''
"""ACME widgets for cdcsync: the smallest provider a third party can ship."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cdcsync.errors import SinkConflictError, SinkPermanentError
from cdcsync.sinks.base import ExternalRecord, Sink, count_call
from cdcsync.sinks.registry import Provider, ProviderContext


class AcmeSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    object_type: str = "widget"
    id_prefix: str = Field(default="acme-", min_length=1)


class AcmeSink(Sink):
    """Widgets in a dict, with a version that changes on every write."""

    def __init__(self, settings: AcmeSettings, context: ProviderContext) -> None:
        self.settings = settings
        self.object_type = settings.object_type
        self.integration = context.integration
        self.rows: dict[str, tuple[str, dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._versions = itertools.count(1)

    def _record(self, oid: str) -> ExternalRecord:
        version, fields = self.rows[oid]
        return ExternalRecord(oid, version, dict(fields))

    def _write(self, oid: str, fields: Mapping[str, Any]) -> ExternalRecord:
        self.rows[oid] = (f"v{next(self._versions)}", dict(fields))
        return self._record(oid)

    async def get(self, external_id: str) -> ExternalRecord | None:
        count_call()
        return self._record(external_id) if external_id in self.rows else None

    async def find(self, natural_key: Mapping[str, Any]) -> ExternalRecord | None:
        count_call()
        for oid, (_, fields) in self.rows.items():
            if all(fields.get(k) == v for k, v in natural_key.items()):
                return self._record(oid)
        return None

    async def create(self, payload: Mapping[str, Any]) -> ExternalRecord:
        count_call()
        return self._write(f"{self.settings.id_prefix}{next(self._ids)}", payload)

    async def update(
        self, external_id: str, payload: Mapping[str, Any], *, expected_row_id: str | None = None
    ) -> ExternalRecord:
        count_call()
        if external_id not in self.rows:
            raise SinkPermanentError(f"{external_id} not found", status_code=404)
        if expected_row_id is not None and expected_row_id != self.rows[external_id][0]:
            raise SinkConflictError(f"{external_id} changed", status_code=412)
        return self._write(external_id, payload)

    async def delete(self, external_id: str, *, expected_row_id: str | None = None) -> bool:
        count_call()
        return self.rows.pop(external_id, None) is not None

    async def list(self) -> AsyncIterator[ExternalRecord]:
        for oid in list(self.rows):
            yield self._record(oid)

    def link(self, external_id: str) -> str:
        return f"https://acme.example.com/{self.object_type}s/{external_id}"


provider = Provider(
    identifier="acme",
    display_name="ACME widgets",
    description="Widgets of the ACME inventory (an in-memory stand-in).",
    settings_model=AcmeSettings,
    factory=lambda settings, context: AcmeSink(settings, context),
)
'''

BROKEN_MODULE = '''
"""Entry points that are wrong in each way a plug-in can be wrong."""

from acme_cdcsync import AcmeSettings, AcmeSink
from cdcsync.sinks.registry import Provider

not_a_provider = {"identifier": "acme-wrong-type"}

misnamed = Provider(
    identifier="someone-else",
    display_name="Misnamed",
    description="Registered as acme-misnamed but calls itself someone-else.",
    settings_model=AcmeSettings,
    factory=lambda settings, context: AcmeSink(settings, context),
)
'''

ACME_ENTRY_POINTS = {"acme": "acme_cdcsync:provider"}

BROKEN_ENTRY_POINTS = {
    "acme-missing": "acme_no_such_module:provider",
    "acme-wrong-type": "acme_broken:not_a_provider",
    "acme-misnamed": "acme_broken:misnamed",
}

CHECK = """
import asyncio
import json
import sys

import acme_cdcsync
from cdcsync.errors import ConfigurationError
from cdcsync.sinks.base import CallCounter, call_counter
from cdcsync.sinks.registry import SinkRegistry, build_sink, default_registry

broken = sys.argv[1:]
registry = SinkRegistry(entry_points_group="cdcsync.providers")
report = {
    "names": registry.names(),
    "default_names": default_registry.names(),
    "module_file": acme_cdcsync.__file__,
    "defaults": registry.provider("acme").settings_defaults(),
}


async def use() -> dict:
    counter = CallCounter()
    call_counter.set(counter)
    sink = build_sink("acme", {"object_type": "gadget"})
    created = await sink.create({"name": "anvil"})
    got = await sink.get(created.id)
    updated = await sink.update(created.id, {"name": "anvil 2"}, expected_row_id=created.row_id)
    await sink.aclose()
    return {
        "type": f"{type(sink).__module__}.{type(sink).__name__}",
        "created": [created.id, created.row_id, dict(created.fields)],
        "got": [got.id, got.row_id, dict(got.fields)] if got else None,
        "updated": [updated.id, updated.row_id, dict(updated.fields)],
        "link": sink.link(created.id),
        "calls": counter.calls,
    }


report["sink"] = asyncio.run(use())
report["errors"] = {}
for name in broken:
    try:
        registry.provider(name)
    except ConfigurationError as exc:
        report["errors"][name] = str(exc)
    else:
        report["errors"][name] = None
print(json.dumps(report))
"""


def _pyproject(name: str, modules: list[str], entry_points: dict[str, str]) -> str:
    points = "\n".join(f'{k} = "{v}"' for k, v in entry_points.items())
    return textwrap.dedent(
        f"""\
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{name}"
        version = "{VERSION}"
        dependencies = ["cdcsync"]

        [project.entry-points."{ENTRY_POINT_GROUP}"]
        {{points}}

        [tool.setuptools]
        py-modules = {json.dumps(modules)}
        """
    ).replace("{points}", points)


def _setuptools_builds_wheels() -> bool:
    """Whether the installed setuptools can build a wheel offline, without isolation."""
    import setuptools

    major, minor = (int(part) for part in setuptools.__version__.split(".")[:2])
    return importlib.util.find_spec("wheel") is not None or (major, minor) >= (70, 1)


def _wheel(dist: str, modules: dict[str, str], entry_points: dict[str, str], into: Path) -> Path:
    """A pure-Python wheel built by hand (what setuptools would build), for old setuptools."""
    stem = dist.replace("-", "_")
    info = f"{stem}-{VERSION}.dist-info"
    points = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    files = {f"{module}.py": source for module, source in modules.items()} | {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {dist}\nVersion: {VERSION}\n",
        f"{info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: cdcsync-tests\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        ),
        f"{info}/entry_points.txt": f"[{ENTRY_POINT_GROUP}]\n{points}",
    }
    record = []
    for path, text in files.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    wheel = into / f"{stem}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return wheel


def _install(root: Path, dist: str, modules: dict[str, str], entry_points: dict[str, str]) -> Path:
    """Write the project, install it with pip into ``root/<dist>-site``; that folder."""
    project = root / dist
    project.mkdir()
    for module, text in modules.items():
        (project / f"{module}.py").write_text(text)
    pyproject = _pyproject(dist, list(modules), entry_points)
    assert tomllib.loads(pyproject)["project"]["entry-points"][ENTRY_POINT_GROUP] == entry_points
    (project / "pyproject.toml").write_text(pyproject)
    # setuptools older than 70.1 needs the `wheel` package to build one; offline, hand pip
    # the wheel it would have built instead (pip itself still does the installing).
    source = project if _setuptools_builds_wheels() else _wheel(dist, modules, entry_points, root)
    site = root / f"{dist}-site"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation"]
    offline = ["--no-index", "--no-cache-dir", "--target", str(site), str(source)]
    done = subprocess.run(
        [*pip, *offline],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, f"pip install {dist} failed:\n{done.stdout}\n{done.stderr}"
    assert (site / f"{dist.replace('-', '_')}-{VERSION}.dist-info" / "entry_points.txt").exists()
    return site


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("plugins")
    return {
        "acme": _install(root, "acme-cdcsync", {"acme_cdcsync": ACME_MODULE}, ACME_ENTRY_POINTS),
        "broken": _install(
            root, "acme-cdcsync-broken", {"acme_broken": BROKEN_MODULE}, BROKEN_ENTRY_POINTS
        ),
    }


def _run(paths: list[Path], broken: list[str], cwd: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in paths)}
    done = subprocess.run(
        [sys.executable, "-c", CHECK, *broken],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def test_an_installed_plugin_is_listed_and_built(sites: dict[str, Path], tmp_path: Path) -> None:
    report = _run([sites["acme"]], [], tmp_path)

    assert {"acme", "postgres", "rest"} <= set(report["names"])
    assert report["names"] == report["default_names"] == sorted(report["names"])
    assert Path(report["module_file"]).is_relative_to(sites["acme"])
    assert report["defaults"] == {"object_type": "widget", "id_prefix": "acme-"}

    sink = report["sink"]
    assert sink["type"] == "acme_cdcsync.AcmeSink"
    assert sink["created"] == ["acme-1", "v1", {"name": "anvil"}]
    assert sink["got"] == sink["created"]
    assert sink["updated"] == ["acme-1", "v2", {"name": "anvil 2"}]
    assert sink["link"] == "https://acme.example.com/gadgets/acme-1"
    assert sink["calls"] == 3


def test_broken_plugins_name_their_entry_point(sites: dict[str, Path], tmp_path: Path) -> None:
    report = _run([sites["acme"], sites["broken"]], list(BROKEN_ENTRY_POINTS), tmp_path)

    # listing never loads a plug-in, and one broken plug-in does not break the others
    assert set(BROKEN_ENTRY_POINTS) | {"acme", "postgres", "rest"} <= set(report["names"])
    assert report["sink"]["created"][0] == "acme-1"

    errors = report["errors"]
    for name, value in BROKEN_ENTRY_POINTS.items():
        assert errors[name] is not None, f"{name} loaded without error"
        assert f"entry point {name!r} ({value})" in errors[name]
    assert "cannot be loaded" in errors["acme-missing"]
    assert "acme_no_such_module" in errors["acme-missing"]
    assert "dict" in errors["acme-wrong-type"] and "Provider" in errors["acme-wrong-type"]
    assert "'someone-else'" in errors["acme-misnamed"]


def test_the_real_site_packages_are_untouched(sites: dict[str, Path]) -> None:
    assert importlib.util.find_spec("acme_cdcsync") is None
    assert importlib.util.find_spec("acme_broken") is None
    names = SinkRegistry(entry_points_group=ENTRY_POINT_GROUP).names()
    assert not {"acme", *BROKEN_ENTRY_POINTS} & set(names)
    assert {"postgres", "rest"} <= set(names)
