"""The loader reads the file and the environment; the shapes in schemas read neither."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from cdcsync.errors import ConfigurationError
from cdcsync.schemas.config import Config
from cdcsync.stack.settings import StackSettings
from cdcsync.streams.config import DEMO_CONFIG, default_config_path, load_config, read_config

MINIMAL = {
    "entities": {
        "contact": {
            "topic": "t.contact",
            "mapping": {"email": "email"},
            "target": {"provider": "rest", "settings": {"base_url": "http://127.0.0.1:1"}},
        }
    }
}


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "cdcsync.yaml"
    path.write_text(yaml.safe_dump(MINIMAL))
    return path


def test_the_path_is_the_variable_then_the_local_file_then_the_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CDCSYNC_CONFIG", raising=False)
    assert default_config_path() == DEMO_CONFIG and DEMO_CONFIG.is_file()
    (tmp_path / "cdcsync.yaml").write_text("{}")
    assert default_config_path() == Path("cdcsync.yaml")
    monkeypatch.setenv("CDCSYNC_CONFIG", "/etc/elsewhere.yaml")
    assert default_config_path() == Path("/etc/elsewhere.yaml")


def test_the_database_url_comes_from_the_variable_the_file_names(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = {**MINIMAL, "database": {"url_env": "MY_DB"}}
    config_file.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("MY_DB", "postgresql://u:pw@db.example.com/app")
    monkeypatch.setenv("CDCSYNC_CONFIG", str(config_file))
    assert load_config().database.url() == "postgresql://u:pw@db.example.com/app"


def test_without_the_variable_the_url_is_the_local_stacks_database(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CDCSYNC_DATABASE_URL", raising=False)
    assert load_config(config_file).database.url() == StackSettings().pg_dsn()


def test_the_resolved_url_is_never_dumped_exported_or_shown(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDCSYNC_DATABASE_URL", "postgresql://u:s3cr3t@db/app")
    config = load_config(config_file)
    assert config.database.url().endswith("s3cr3t@db/app")
    shown = [repr(config), config.model_dump_json(), json.dumps(Config.model_json_schema())]
    assert not any("s3cr3t" in text for text in shown)
    assert config.model_copy(update={"entities": {}}).database.url() == config.database.url()


def test_a_config_built_in_code_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDCSYNC_DATABASE_URL", "postgresql://from-env/app")
    config = Config.model_validate(MINIMAL)
    with pytest.raises(ConfigurationError, match="database URL was not resolved"):
        config.database.url()
    given = config.with_database_url("postgresql://given/app")
    assert given.database.url() == "postgresql://given/app"
    assert given.entities == config.entities


def test_a_url_in_the_file_is_refused(config_file: Path) -> None:
    config_file.write_text(yaml.safe_dump({**MINIMAL, "database": {"url": "postgresql://x"}}))
    with pytest.raises(ConfigurationError, match=r"database\.url: Extra inputs"):
        read_config(config_file)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such configuration file; set CDCSYNC_CONFIG"),
        ("app: [\n  broken", "not valid YAML"),
        ("entities: 5", "invalid configuration (1 errors):\n  entities: Input should be"),
        ("", "invalid configuration (1 errors):\n  entities: Field required"),
    ],
)
def test_errors_name_the_file_and_what_is_wrong(
    config_text: Callable[[str | None], Path], content: str | None, message: str
) -> None:
    path = config_text(content)
    with pytest.raises(ConfigurationError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)


def test_a_directory_is_not_a_configuration_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read the configuration file"):
        load_config(tmp_path)
