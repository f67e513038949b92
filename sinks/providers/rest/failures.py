"""How a failed REST call becomes a SinkError: transient, conflict or permanent, redacted."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import Any, NoReturn
from urllib.parse import quote, quote_plus

import httpx
from pydantic import SecretStr

from cdcsync.errors import SinkConflictError, SinkError, SinkPermanentError, SinkTransientError
from cdcsync.sinks.providers.rest.settings import RestSettings

__all__ = ["Failures", "is_transient_status"]

logger = logging.getLogger(__name__)

_EXCERPT_CHARS = 200
_TRANSIENT_STATUSES = frozenset({408, 429})


def is_transient_status(status: int) -> bool:
    """5xx, 408 and 429: the API is busy or down, and the same call may succeed later."""
    return status >= 500 or status in _TRANSIENT_STATUSES


class Failures:
    """Builds the error of one failed call of a collection, its message free of the credential."""

    def __init__(
        self,
        settings: RestSettings,
        token: SecretStr | None,
        *,
        secrets: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        self.settings = settings
        self._token = token
        #: The auth's secrets of the moment (an OAuth2 access token changes), to redact too.
        self._secrets = secrets

    def fail(
        self, method: str, path: str, what: str, *, cause: BaseException | None = None, **kw: Any
    ) -> NoReturn:
        """Raise :meth:`error` for one failed call, ``from`` its cause."""
        raise self.error(method, path, what, **kw) from cause

    def error(
        self,
        method: str,
        path: str,
        what: str,
        *,
        transient: bool = False,
        status: int | None = None,
        retry_after: float | None = None,
        conflict: bool = False,
    ) -> SinkError:
        """The sink error for one failed call, its message free of the credential."""
        message = self.redact(f"{self.settings.object_type} API: {method} {path} {what}")
        logger.debug("%s", message)
        error_class: type[SinkError] = SinkPermanentError
        if transient:
            error_class = SinkTransientError
        elif conflict:
            error_class = SinkConflictError
        return error_class(message, status_code=status, retry_after=retry_after)

    def status_error(
        self, method: str, path: str, status: int, excerpt: str, retry_after: float | None
    ) -> SinkError:
        """The error for an HTTP status: transient for 5xx, 408 and 429, else permanent."""
        if is_transient_status(status):
            wait = f" (Retry-After {retry_after:g}s)" if retry_after is not None else ""
            what = f"answered HTTP {status}{wait}: {excerpt}; the API is busy or down, will retry"
            return self.error(
                method, path, what, transient=True, status=status, retry_after=retry_after
            )
        return self.error(
            method, path, f"answered HTTP {status}: {excerpt}; {self.hint(status)}", status=status,
            conflict=status in (409, 412),
        )  # fmt: skip

    def hint(self, status: int) -> str:
        """What a refusal with ``status`` most likely means, and what to check."""
        s = self.settings
        if status in (401, 403) and s.auth == "oauth2":
            problem = "was refused" if status == 401 else "lacks permission"
            return f"the OAuth2 token from {s.token_url} {problem}; check client_id and scope"
        if status in (401, 403):
            if s.auth == "none":
                where = "nowhere (auth: none)"
            elif s.token is not None:
                where = "the configuration's secret `token`"
            elif s.token_env:
                where = f"the variable {s.token_env}"
            else:
                where = "nowhere (no secret `token` configured)"
            problem = "is missing or wrong" if status == 401 else "lacks permission"
            return f"the credential from {where} {problem}"
        if status == 404:
            return f"the {s.object_type} does not exist (deleted externally?) or the path is wrong"
        if status in (409, 412):
            return "the object changed concurrently; re-read it and decide again"
        if status in (400, 422):
            return "the API rejected the payload; check the field mapping"
        if 300 <= status < 400:
            return "unexpected redirect; check base_url and collection_path"
        return "the API refused the request; retrying will not help"

    def redact(self, text: str) -> str:
        """``text`` with every credential, as is or URL-encoded, replaced by asterisks."""
        secrets = [] if self._token is None else [self._token.get_secret_value()]
        for secret in sorted({*secrets, *self._secrets()} - {""}, key=len, reverse=True):
            for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
                text = text.replace(form, "**********")
        return text

    def excerpt(self, response: httpx.Response) -> str:
        """The start of the body on one line, redacted before it is cut so no secret is halved."""
        try:
            text = self.redact(re.sub(r"\s+", " ", response.text).strip())
        except (UnicodeDecodeError, LookupError):
            return "<undecodable body>"
        if len(text) > _EXCERPT_CHARS:
            text = text[:_EXCERPT_CHARS] + "…"
        return text or "<empty body>"
