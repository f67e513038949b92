"""`up --secure`: certificates (JDK keytool) and SASL users for the broker's SASL_SSL listener.

Made once under ``<home>/kafka/secure/`` and reused: a CA (``ca.p12``, and
``ca.pem`` for the Python clients), the broker's keystore signed by it
(``broker.p12``, for 127.0.0.1 and localhost), a PKCS12 truststore for Java
clients, and ``client.password`` holding the SASL user's password, which a
configuration names as ``password: {file: ...}``. The SCRAM credentials are
set through the PLAINTEXT listener with Kafka's ConfigCommand (the admin API),
so they also work on storage formatted before ``--secure`` was first used.
"""

from __future__ import annotations

import os
import ssl
import subprocess
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from cdcsync.connect.security import connect_client_properties
from cdcsync.errors import StackError
from cdcsync.schemas.kafka import KafkaSecurity
from cdcsync.stack.config_files import LOCAL_STORE_PASSWORD
from cdcsync.stack.kafka import answers_with_brokers, java
from cdcsync.stack.processes import Progress
from cdcsync.stack.settings import StackSettings

__all__ = [
    "PASSWORD_ENV",
    "client_security",
    "ensure_certificates",
    "ensure_users",
    "secure_admin_ok",
    "worker_security_properties",
]

#: The Connect worker's environment variable holding the SASL password (never in its file).
PASSWORD_ENV = "CDCSYNC_SECURE_PASSWORD"

_VALIDITY_DAYS = "3650"


def _keytool(settings: StackSettings) -> str:
    tool = Path(java(settings)).with_name("keytool")
    if not tool.is_file():
        raise StackError(f"keytool not found beside {java(settings)}; install a full JDK 17")
    return str(tool)


def _run(argv: list[str], *, what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        # The last exception line: the full output repeats the arguments (a password).
        lines = (result.stderr or result.stdout).strip().splitlines()
        causes = [line for line in lines if "Exception" in line and "args" not in line]
        raise StackError(f"{what} failed: {(causes or lines or ['no output'])[-1]}")


def _store(path: Path) -> list[str]:
    return ["-keystore", str(path), "-storetype", "PKCS12", "-storepass", LOCAL_STORE_PASSWORD]


def _make_certificates(settings: StackSettings, tmp: Path) -> None:
    """CA, broker key signed by it, truststore: all written into ``tmp``."""
    kt, ca, broker = _keytool(settings), tmp / "ca.p12", tmp / "broker.p12"
    san = f"SAN=ip:{settings.host},ip:127.0.0.1,dns:localhost"
    key = ["-keyalg", "RSA", "-keysize", "2048", "-validity", _VALIDITY_DAYS]
    steps = [
        ("CA key", [kt, "-genkeypair", "-alias", "ca", "-dname", "CN=cdcsync local CA",
                    "-ext", "bc:c", *key, *_store(ca)]),
        ("CA PEM", [kt, "-exportcert", "-rfc", "-alias", "ca", "-file", str(tmp / "ca.pem"),
                    *_store(ca)]),
        ("broker key", [kt, "-genkeypair", "-alias", "broker", "-dname",
                        f"CN={settings.host}", "-ext", san, *key, *_store(broker)]),
        ("broker CSR", [kt, "-certreq", "-alias", "broker", "-file", str(tmp / "broker.csr"),
                        *_store(broker)]),
        ("broker certificate", [kt, "-gencert", "-alias", "ca", "-rfc", "-ext", san,
                                "-validity", _VALIDITY_DAYS, "-infile", str(tmp / "broker.csr"),
                                "-outfile", str(tmp / "broker.crt"), *_store(ca)]),
        ("CA into keystore", [kt, "-importcert", "-noprompt", "-alias", "ca",
                              "-file", str(tmp / "ca.pem"), *_store(broker)]),
        ("chain into keystore", [kt, "-importcert", "-alias", "broker",
                                 "-file", str(tmp / "broker.crt"), *_store(broker)]),
        ("truststore", [kt, "-importcert", "-noprompt", "-alias", "ca",
                        "-file", str(tmp / "ca.pem"), *_store(tmp / "truststore.p12")]),
    ]  # fmt: skip
    for what, argv in steps:
        _run(argv, what=f"keytool ({what})")


def ensure_certificates(settings: StackSettings, progress: Progress = print) -> bool:
    """Make the CA, broker keystore, truststore and password file once; True if made now."""
    folder = settings.secure_dir
    password_file = folder / "client.password"
    made = False
    if not (folder / "broker.p12").is_file() or not (folder / "ca.pem").is_file():
        progress(f"kafka: making a CA and the broker's certificate with keytool in {folder}")
        tmp = folder.with_name("secure.tmp")
        if tmp.exists():
            for leftover in tmp.iterdir():
                leftover.unlink()
        tmp.mkdir(parents=True, exist_ok=True)
        _make_certificates(settings, tmp)
        _move_into(tmp, folder)
        made = True
    password = settings.secure_password.get_secret_value()
    if not password_file.is_file() or password_file.read_text().strip() != password:
        password_file.touch(mode=0o600)
        password_file.write_text(password + "\n")
    return made


def _move_into(tmp: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for path in tmp.iterdir():
        os.replace(path, folder / path.name)
    tmp.rmdir()


def client_security(settings: StackSettings, mechanism: str = "SCRAM-SHA-512") -> dict[str, Any]:
    """``app.security`` for the local SASL_SSL listener (password read from its file)."""
    return {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": mechanism,
        "username": settings.secure_user,
        "password": {"file": str(settings.secure_dir / "client.password")},
        "ca_file": str(settings.secure_dir / "ca.pem"),
    }


def worker_security_properties(settings: StackSettings) -> dict[str, object]:
    """The Connect worker on the SASL_SSL listener: Debezium writes through it too."""
    security = KafkaSecurity.model_validate(
        {**client_security(settings), "password": {"env": PASSWORD_ENV}}
    )
    return {
        "bootstrap.servers": settings.secure_bootstrap_servers,
        **connect_client_properties(security),
    }


def secure_admin_ok(settings: StackSettings, mechanism: str, *, timeout: float = 5.0) -> bool:
    """True if the SASL_SSL listener takes the local user's credentials for ``mechanism``."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=settings.secure_bootstrap_servers,
            client_id="cdcsync-stack",
            security_protocol="SASL_SSL",
            sasl_mechanism=mechanism,
            sasl_plain_username=settings.secure_user,
            sasl_plain_password=settings.secure_password.get_secret_value(),
            ssl_context=ssl.create_default_context(cafile=settings.secure_dir / "ca.pem"),
            request_timeout_ms=int(timeout * 1000),
            api_version_auto_timeout_ms=int(timeout * 1000),
        )
    except KafkaError:
        return False
    return answers_with_brokers(admin)


def ensure_users(settings: StackSettings, progress: Progress = print) -> None:
    """Give the local user SCRAM-SHA-512/256 credentials unless the listener already takes them."""
    if secure_admin_ok(settings, "SCRAM-SHA-512"):
        return
    password = settings.secure_password.get_secret_value()
    if any(c in password for c in ",[]="):
        raise StackError("CDCSYNC_SECURE_PASSWORD must not contain , [ ] or =")
    progress(f"kafka: creating SCRAM user {settings.secure_user}")
    for mechanism in ("SCRAM-SHA-512", "SCRAM-SHA-256"):  # one per request
        argv = [
            java(settings), "-Xmx256m", "-cp", f"{settings.kafka_libs}/*",
            "kafka.admin.ConfigCommand", "--bootstrap-server", settings.bootstrap_servers,
            "--alter", "--add-config", f"{mechanism}=[password={password}]",
            "--entity-type", "users", "--entity-name", settings.secure_user,
        ]  # fmt: skip
        _run(argv, what=f"creating the {mechanism} user")
    if not secure_admin_ok(settings, "SCRAM-SHA-512", timeout=10.0):
        raise StackError(
            f"the SASL_SSL listener on {settings.secure_bootstrap_servers} refuses the SCRAM "
            f"user {settings.secure_user}; see {settings.logs_dir / 'kafka.log'}"
        )
