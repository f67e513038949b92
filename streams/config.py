"""Reading the configuration: the YAML file and the environment, into one validated ``Config``.

Which file: ``$CDCSYNC_CONFIG``, else ``./cdcsync.yaml``, else the demo's.
The database URL is resolved here, once: the variable the file names
(``database.url_env``), else the local stack's database; ``config.database.url()``
returns it. So is the Kafka password (``app.security.password``, from an env variable
or a file). ``cdcsync.schemas.config`` holds the shapes and reads nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import ValidationError

from cdcsync.errors import ConfigurationError
from cdcsync.schemas.config import Config
from cdcsync.sinks.secrets import resolve_secrets
from cdcsync.stack.settings import StackSettings

__all__ = [
    "CONFIG_ENV",
    "database_url",
    "default_config_path",
    "load_config",
    "read_config",
    "with_kafka_password",
]

#: Environment variable naming the configuration file.
CONFIG_ENV = "CDCSYNC_CONFIG"
DEMO_CONFIG = Path(__file__).resolve().parent.parent / "demo" / "cdcsync.yaml"


def default_config_path() -> Path:
    """``$CDCSYNC_CONFIG``, else ``./cdcsync.yaml``, else the demo's configuration."""
    if env := os.environ.get(CONFIG_ENV):
        return Path(env)
    local = Path("cdcsync.yaml")
    if local.exists():
        return local
    return DEMO_CONFIG


def read_config(path: Path) -> Config:
    """The file validated, nothing resolved; errors name the file and the path inside it."""
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigurationError(
            f"{path}: no such configuration file; set {CONFIG_ENV} or create ./cdcsync.yaml "
            "(demo/cdcsync.yaml is an example)"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{path}: cannot read the configuration file: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return Config.model_validate(data or {})
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ConfigurationError(
            f"{path}: invalid configuration ({exc.error_count()} errors):\n" + "\n".join(lines)
        ) from exc


def database_url(config: Config) -> str:
    """The source database's URL: ``$<database.url_env>``, else the local stack's database."""
    return os.environ.get(config.database.url_env) or StackSettings().pg_dsn()


def load_config(path: Path | str | None = None) -> Config:
    """Read and validate the file (default: :func:`default_config_path`), resolve the
    database URL from the environment, and return the configuration.
    """
    config = read_config(Path(path) if path is not None else default_config_path())
    return with_kafka_password(config.with_database_url(database_url(config)))


def with_kafka_password(config: Config) -> Config:
    """The configuration with ``app.security.password`` read from its env variable or file."""
    security = config.app.security
    if security.password is None:
        return config
    secret = resolve_secrets({"password": security.password}, where="app.security")["password"]
    app = config.app.model_copy(
        update={"security": security.with_password(secret.get_secret_value())}
    )
    return config.model_copy(update={"app": app})
