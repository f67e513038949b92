"""How every Kafka client of cdcsync authenticates and encrypts: ``app.security``.

One model serves the worker (Faust/aiokafka), the operator tools, bench and
harness (kafka-python) and the Connect worker's properties. The password is a
:class:`SecretRef` (``{env: X}`` or ``{file: path}``); the loader
(``cdcsync.streams.config.load_config``) reads it and gives it to
:meth:`KafkaSecurity.with_password`, so it is never a field: never dumped,
exported or shown in a repr. These are shapes and pure conversions only.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, PrivateAttr, SecretStr, model_validator

from cdcsync.errors import ConfigurationError
from cdcsync.schemas.integrations import SecretRef

__all__ = ["SASL_MECHANISMS", "SECURITY_PROTOCOLS", "KafkaSecurity"]

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
#: OAUTHBEARER is left out: every client would need its own token provider code.
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class KafkaSecurity(BaseModel):
    """Protocol, SASL user and TLS files every Kafka client uses (default: PLAINTEXT)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    username: str | None = None
    #: Where the SASL password is read from at start-up: ``{env: VAR}`` or ``{file: path}``.
    password: SecretRef | None = None
    #: PEM file of the CA that signed the brokers' certificates (else the system's CAs).
    ca_file: str | None = None
    #: PEM client certificate and its key, for brokers that ask for one (mTLS).
    cert_file: str | None = None
    key_file: str | None = None
    #: Check that the broker's certificate names the host connected to.
    check_hostname: bool = True
    _password: SecretStr | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSecurity:
        sasl = self.sasl
        given = [n for n in ("sasl_mechanism", "username", "password") if getattr(self, n)]
        if sasl and len(given) < 3:
            missing = sorted({"sasl_mechanism", "username", "password"} - set(given))
            raise ValueError(f"{self.security_protocol} needs {', '.join(missing)}")
        if not sasl and given:
            raise ValueError(
                f"{', '.join(given)} only apply to SASL_SSL or SASL_PLAINTEXT, "
                f"not {self.security_protocol}"
            )
        files = [n for n in ("ca_file", "cert_file", "key_file") if getattr(self, n)]
        if files and not self.tls:
            raise ValueError(f"{', '.join(files)} only apply to SSL or SASL_SSL")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("give cert_file and key_file together (mTLS), or neither")
        return self

    @property
    def sasl(self) -> bool:
        """Whether clients authenticate with SASL."""
        return self.security_protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        """Whether connections are encrypted with TLS."""
        return self.security_protocol in ("SSL", "SASL_SSL")

    def with_password(self, password: str) -> KafkaSecurity:
        """A copy whose :meth:`password_value` returns ``password`` (the loader resolves it)."""
        copy = self.model_copy()
        copy._password = SecretStr(password)
        return copy

    def password_value(self) -> str:
        """The resolved SASL password (a secret: never log it)."""
        if self._password is None:
            raise ConfigurationError(
                "app.security.password was not resolved: read the configuration with "
                "cdcsync.streams.config.load_config"
            )
        return self._password.get_secret_value()

    def describe(self) -> str:
        """The protocol, mechanism and user, for messages (never the password)."""
        if not self.sasl:
            return self.security_protocol
        return f"{self.security_protocol} {self.sasl_mechanism} user {self.username}"

    def sasl_settings(self) -> dict[str, Any]:
        """The protocol and SASL keyword arguments kafka-python and aiokafka share.

        TLS goes in an ``ssl_context`` made from the files
        (``cdcsync.operators.kafka_clients``): reading them is I/O.
        """
        kwargs: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.sasl:
            kwargs.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password_value(),
            )
        return kwargs
