"""What a REST target is configured with (its credential read and sent by :mod:`.auth`)."""

from __future__ import annotations

from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from cdcsync.sinks.base import check_link_template
from cdcsync.sinks.providers.rest.pointer import check_pointer, escape_token

__all__ = ["RestSettings"]


class RestSettings(BaseModel):
    """Where the collection lives and how its JSON is shaped; secrets only by env var name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str
    collection_path: str
    object_type: str = Field(min_length=1)
    id_field: str = Field(default="id", min_length=1)
    version_field: str | None = "rowId"
    auth_header: str = Field(default="Authorization", min_length=1)
    auth_scheme: str = "Bearer"
    #: The credential, from the configuration's ``secrets: {token: {env|file: ...}}``.
    token: SecretStr | None = None
    #: Shorthand for an inline target: the environment variable holding the token.
    token_env: str | None = None
    #: How updates are sent: PUT replaces the mapped fields, PATCH merges them.
    update_method: Literal["PUT", "PATCH"] = "PUT"
    # -- writes and auth
    concurrency: Literal["if_match", "read_before_write", "none"] = Field(
        default="if_match", description="How a push guards against a concurrent edit: If-Match "
        "(412 = conflict), a GET comparing the version first, or not at all",
    )  # fmt: skip
    auth: Literal["header", "basic", "query", "oauth2", "none"] = Field(
        default="header", description="How calls authenticate: token in auth_header, HTTP Basic, "
        "token in a query parameter, OAuth2 client credentials, or no credential",
    )  # fmt: skip
    username: str | None = Field(
        default=None, min_length=1, description="The user of auth: basic (the secret token is "
        "the password)",
    )  # fmt: skip
    auth_query_param: str = Field(
        default="api_key", min_length=1, description="The query parameter carrying the secret "
        "token (auth: query); redacted wherever calls are shown",
    )  # fmt: skip
    token_url: str | None = Field(
        default=None, description="The OAuth2 token endpoint, an absolute URL (auth: oauth2)"
    )
    client_id: str | None = Field(
        default=None, min_length=1, description="The OAuth2 client id (auth: oauth2)"
    )
    client_secret: SecretStr | None = Field(
        default=None, description="The OAuth2 client secret (auth: oauth2), only from `secrets:`"
    )
    scope: str | None = Field(
        default=None, description="The OAuth2 scope to ask for, space-separated (auth: oauth2)"
    )
    patch_format: Literal["json", "merge-patch"] = Field(
        default="json", description="The body type of a PATCH: application/json, or "
        "application/merge-patch+json (RFC 7396: null removes a field)",
    )  # fmt: skip
    create_method: Literal["POST", "PUT"] = Field(
        default="POST", description="How objects are created: POST to the collection (the API "
        "picks the id) or PUT to {collection_path}/{id} (the client picks it)",
    )  # fmt: skip
    create_id_field: str | None = Field(
        default=None, min_length=1, description="The payload field holding the new object's id "
        "(required with create_method: PUT)",
    )  # fmt: skip
    idempotency_header: str | None = Field(
        default=None, min_length=1, description="The header a create carries an idempotency key "
        "in (e.g. Idempotency-Key), for APIs that answer a repeated key with the object first "
        "made: the key comes from the entity and the source position, so a retry sends it again",
    )  # fmt: skip
    # -- end of writes and auth
    page_size: int = Field(default=100, ge=1, le=10_000)
    limit_param: str = "limit"
    cursor_param: str = "cursor"
    # -- answers, envelopes, paging, versions
    items_path: str = Field(
        default="/items",
        description='JSON Pointer to the list in a listing ("" a bare array, "/data", "/results")',
    )
    object_path: str = Field(
        default="", description='JSON Pointer to the object in a single-object answer ("/data")'
    )
    next_path: str | None = Field(
        default="/next", description="JSON Pointer to the next cursor or next link of a listing"
    )
    total_path: str | None = Field(
        default=None, description='JSON Pointer to the total count ("/count", "/meta/total_count")'
    )
    total_header: str | None = Field(
        default=None, description='Header holding the total count, e.g. "X-Total-Count"'
    )
    list_params: dict[str, str] = Field(
        default_factory=dict, description='Extra query parameters on every listing, e.g. {"meta": '
        '"total_count"}',
    )  # fmt: skip
    filter_param: str = Field(
        default="{field}", min_length=1, description="Query parameter that filters a listing on "
        'one field, for natural-key lookups: "{field}" (?email=x), Directus '
        '"filter[{field}][_eq]", Strapi "filters[{field}][$eq]"',
    )  # fmt: skip
    find_many_param: str | None = Field(
        default=None, description="Query parameter that filters a listing on several values "
        "of one field, comma-separated, so the natural-key lookups of concurrent creates share "
        'one request: Directus "filter[{field}][_in]", django-filter "{field}__in"; unset: one '
        "lookup per create",
    )  # fmt: skip
    find_many_max: int = Field(
        default=50, ge=2, le=200, description="Most values one find_many_param lookup carries "
        "(they go in the URL: mind the API's URL length limit, often 8 KB)",
    )  # fmt: skip
    paging: Literal["cursor", "link_header", "offset", "page", "none"] = Field(
        default="cursor", description="How a listing goes on: next cursor/link, Link header, "
        "offset+limit, page+limit, or one request",
    )  # fmt: skip
    offset_param: str = Field(
        default="offset", min_length=1, description="Query parameter of the offset (offset paging)"
    )
    page_param: str = Field(
        default="page", min_length=1, description='Query parameter of the page number ("_page")'
    )
    first_page: int = Field(default=1, ge=0, description="Number of the first page (page paging)")
    version_source: Literal["field", "etag", "none"] = Field(
        default="field", description="Where an object's version is: version_field, the ETag "
        "header, or nowhere (then use poll.version: hash)",
    )  # fmt: skip
    after_write: Literal["read_back", "next_poll"] = Field(
        default="read_back", description="When a write answer lacks the object or its version: "
        "GET it once, or leave the version to the next poll",
    )  # fmt: skip
    items_field: str | None = Field(
        default=None, description="Deprecated: items_path as a dotted name (data.rows)"
    )
    next_field: str | None = Field(
        default=None, description="Deprecated: next_path as a dotted name (paging.after)"
    )
    link_template: str | None = None
    #: The collection's bulk endpoint (the reference API's shape: ``{"operations": [...]}``
    #: answered by ``{"results": [...]}``); writes of concurrent changes then share calls.
    bulk_path: str | None = None
    bulk_max: int = Field(default=100, ge=2, le=1000)
    timeout_s: float = Field(
        default=10.0, gt=0, description="Seconds the API has to connect and to send each part "
        "of an answer; a request waiting for one of max_connections is not timed"
    )  # fmt: skip
    max_connections: int = Field(
        default=20, ge=1, description="Requests on their way at once (connections kept open); "
        "the others wait in order"
    )  # fmt: skip
    #: The API's budget across all workers; each worker takes 1/workers
    #: (see sinks.delivery.ratelimit).
    rate_limit_rps: float | None = Field(default=None, gt=0)
    max_concurrency: int | None = Field(default=None, ge=1)
    #: Workers sharing the budget; unset: $CDCSYNC_WORKERS, else 1.
    workers: int | None = Field(default=None, ge=1)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError(f"is not a URL ({exc})") from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("must be an absolute http(s) URL, e.g. https://crm.example.com")
        return value.rstrip("/")

    @field_validator("collection_path", "bulk_path")
    @classmethod
    def _absolute_path(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith("/"):
            raise ValueError("must start with '/', e.g. /api/v1/contacts")
        return value.rstrip("/")

    @field_validator("items_path", "object_path", "next_path", "total_path")
    @classmethod
    def _pointer(cls, value: str | None) -> str | None:
        return None if value is None else check_pointer(value)

    @model_validator(mode="before")
    @classmethod
    def _dotted_names(cls, data: Any) -> Any:
        """items_field / next_field (dotted names, before JSON Pointers) as the pointers."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for old, new in (("items_field", "items_path"), ("next_field", "next_path")):
            if data.get(old) is None:
                continue
            if new in data:
                raise ValueError(f"set {new} only: {old} is its older, dotted form")
            data[new] = "/" + "/".join(escape_token(p) for p in str(data[old]).split("."))
        return data

    @field_validator("filter_param", "find_many_param")
    @classmethod
    def _names_the_field(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if check_link_template(value, "field") is None or "{field}" not in value:
            raise ValueError('must name the field as {field}, e.g. "filter[{field}][_eq]"')
        return value

    @field_validator("link_template")
    @classmethod
    def _known_placeholders(cls, value: str | None) -> str | None:
        return check_link_template(value, "base_url", "collection_path", "object_type", "id")

    @model_validator(mode="after")
    def _writes_and_auth(self) -> RestSettings:
        """Each auth and create mode has the settings it needs (writes and auth)."""
        has_token = self.token is not None or self.token_env is not None
        needs: dict[str, bool] = {
            "create_method PUT needs create_id_field (the payload field holding the id)": (
                self.create_method == "PUT" and self.create_id_field is None
            ),
            "auth basic needs username, and the password as secret `token` (or token_env)": (
                self.auth == "basic" and (self.username is None or not has_token)
            ),
            "auth query needs the API key as secret `token` (or token_env)": (
                self.auth == "query" and not has_token
            ),
            "auth oauth2 needs token_url, client_id and secret `client_secret`": (
                self.auth == "oauth2"
                and None in (self.token_url, self.client_id, self.client_secret)
            ),
        }
        if missing := [what for what, lacking in needs.items() if lacking]:
            raise ValueError("; ".join(missing))
        if self.token_url is not None:
            url = httpx.URL(self.token_url)
            if url.scheme not in ("http", "https") or not url.host:
                raise ValueError("token_url must be an absolute http(s) URL")
        return self
