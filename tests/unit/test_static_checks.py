"""The type checker sees the package under its name: a wrong call across modules fails it.

The repository root is the ``cdcsync`` package; mypy finds it through the
``.typecheck/cdcsync`` link configured in pyproject.toml. If that ever broke,
mypy would treat every ``cdcsync.*`` import as ``Any`` and pass anything.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for the module: the package is checked once, the programs after it."""
    return tmp_path_factory.mktemp("mypy-cache")


def _mypy(tmp_path: Path, cache_dir: Path, program: str) -> subprocess.CompletedProcess[str]:
    """Run mypy on ``program`` with the project's settings (minus its file list)."""
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    overrides = settings.get("overrides", [])
    lines = [
        "[mypy]",
        f"python_version = {settings['python_version']}",
        f"mypy_path = {ROOT / settings['mypy_path']}",
        f"plugins = {', '.join(settings['plugins'])}",
        f"cache_dir = {cache_dir}",
    ]
    for override in overrides:
        lines += [f"[mypy-{','.join(override['module'])}]", "ignore_missing_imports = True"]
    (tmp_path / "mypy.ini").write_text("\n".join(lines) + "\n")
    (tmp_path / "program.py").write_text(program)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "program.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("call", "error"),
    [
        ("conflict_winner(config.policies, {}, {})", None),
        ("conflict_winner(config.policies, 1)", 'Missing positional argument "target"'),
        ("conflict_winner('source_wins', {}, {})", 'incompatible type "str"'),
    ],
)
def test_a_wrong_call_across_modules_fails_the_type_check(tmp_path, cache_dir, call, error):
    program = (
        "from cdcsync.agents.decide import conflict_winner\n"
        "from cdcsync.schemas.config import EntityConfig\n"
        "def check(config: EntityConfig) -> None:\n"
        f"    {call}\n"
    )
    result = _mypy(tmp_path, cache_dir, program)
    if error is None:
        assert result.returncode == 0, result.stdout
    else:
        assert result.returncode == 1, result.stdout
        assert error in result.stdout
        assert "import-not-found" not in result.stdout
