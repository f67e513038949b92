"""Habits of other APIs' writes and auth the reference API can take on, so the ``rest``
provider's write and auth settings are tested against each of them.

The defaults are its own habits. Switch them with ``api.writes.switch(...)`` or
``PUT /_admin/write-habits {...}`` (a partial update; ``GET`` shows them):

- ``auth``: ``bearer`` (own), ``query``, ``basic`` or ``oauth2`` (see :mod:`.auth_habits`),
  with ``query_param`` (``api_key``), ``basic_user`` (``refapi``), ``client_id``
  (``cdcsync``) and ``token_ttl_s`` (3600). ``POST /oauth/token`` issues OAuth2 tokens
  and ``POST /_admin/oauth/revoke`` ends them early.
- ``if_match``: ``honour`` (own: a stale one is a 412) or ``ignore`` (PUT, PATCH, DELETE
  and bulk operations overwrite whatever is there, as many APIs do).
- ``patch``: ``json`` (own: a shallow merge of an ``application/json`` body) or
  ``merge-patch`` (only ``application/merge-patch+json``, else 415; RFC 7396: ``null``
  removes a field, objects merge deeply).
- ``put_create``: a PUT to a missing id creates the record with that (client-chosen) id
  and answers 201.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .answers import BadRequestError, json_object, validation_message
from .auth_habits import Authenticator, AuthMode
from .store import NotFoundError, Store

__all__ = ["MERGE_PATCH", "WriteHabits", "WriteSide", "merge_patch"]

logger = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WriteHabits(BaseModel):
    """How this instance authenticates and takes writes (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    auth: AuthMode = "bearer"
    query_param: str = Field(default="api_key", min_length=1)
    basic_user: str = Field(default="refapi", min_length=1)
    client_id: str = Field(default="cdcsync", min_length=1)
    token_ttl_s: int = Field(default=3600, ge=1)
    if_match: Literal["honour", "ignore"] = "honour"
    patch: Literal["json", "merge-patch"] = "json"
    put_create: bool = False


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: ``patch`` applied to ``target`` (``null`` removes, objects merge deeply)."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = merge_patch(merged.get(name), value)
    return merged


class WriteSide:
    """The write and auth habits of one instance, and the parts of serving they change."""

    def __init__(self, store: Store, token: str | None) -> None:
        self.store = store
        self.habits = WriteHabits()
        self.auth = Authenticator(token)

    def switch(self, **changes: Any) -> WriteHabits:
        """Change some habits (validated); returns them all."""
        self.habits = WriteHabits.model_validate({**self.habits.model_dump(), **changes})
        return self.habits

    def reset(self) -> None:
        """Forget every issued token (the habits, like the latency, stay)."""
        self.auth.reset()

    def add_routes(self, app: web.Application) -> None:
        """The token endpoint and the admin endpoints of these habits."""
        app.router.add_post("/oauth/token", self._token)
        app.router.add_post("/_admin/oauth/revoke", self._revoke)
        for method in ("GET", "PUT"):
            app.router.add_route(method, "/_admin/write-habits", self._admin)

    @web.middleware
    async def authenticate(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """aiohttp middleware: every ``/api`` request must carry the habit's credential."""
        if not request.path.startswith("/api/"):
            return await handler(request)
        h = self.habits
        refused = self.auth.check(request, h.auth, query_param=h.query_param,
                                  basic_user=h.basic_user)  # fmt: skip
        if refused is not None:
            return refused
        if h.auth == "query":  # the key is no filter of a listing
            request = request.clone(rel_url=request.rel_url.without_query_params(h.query_param))
        return await handler(request)

    def if_match(self, request: web.Request) -> str | None:
        """The request's ``If-Match``, unless these habits ignore it."""
        return None if self.habits.if_match == "ignore" else request.headers.get("If-Match")

    def bulk_operations(self, operations: list[Any]) -> list[Any]:
        """A bulk request's operations, their ``rowId`` dropped when ``If-Match`` is ignored."""
        if self.habits.if_match == "honour":
            return operations
        return [
            {k: v for k, v in op.items() if k != "rowId"} if isinstance(op, dict) else op
            for op in operations
        ]

    def put_create(
        self, collection: str, record_id: str, body: Mapping[str, Any], if_match: str | None
    ) -> dict[str, Any] | None:
        """With ``put_create``, a PUT to a missing id (and no If-Match) creates it; else None."""
        if not self.habits.put_create or if_match is not None:
            return None
        try:
            self.store.get(collection, record_id)
        except NotFoundError:
            return self.store.create(collection, body, record_id=record_id)
        return None

    async def merge(self, request: web.Request, if_match: str | None) -> dict[str, Any]:
        """A PATCH as these habits take it: a shallow merge, or an RFC 7396 merge patch."""
        collection, record_id = request.match_info["collection"], request.match_info["id"]
        if self.habits.patch == "merge-patch" and request.content_type != MERGE_PATCH:
            message = f"PATCH takes {MERGE_PATCH}, not {request.content_type}"
            body_text = json.dumps({"error": "unsupported_media_type", "message": message})
            raise web.HTTPUnsupportedMediaType(text=body_text, content_type="application/json")
        body = await json_object(request)
        if self.habits.patch == "json":
            return self.store.merge(collection, record_id, body, if_match=if_match)
        current = self.store.get(collection, record_id)
        merged = merge_patch(current, body)
        return self.store.replace(collection, record_id, merged, if_match=if_match)

    async def _token(self, request: web.Request) -> web.Response:
        h = self.habits
        return await self.auth.token_endpoint(request, client_id=h.client_id, ttl_s=h.token_ttl_s)

    async def _revoke(self, request: web.Request) -> web.Response:
        return web.json_response({"revoked": self.auth.revoke()})

    async def _admin(self, request: web.Request) -> web.Response:
        """GET shows the write habits, PUT changes some of them."""
        if request.method == "PUT":
            try:
                self.switch(**await json_object(request))
            except ValidationError as exc:
                raise BadRequestError(validation_message(exc)) from None
        return web.json_response(self.habits.model_dump())
