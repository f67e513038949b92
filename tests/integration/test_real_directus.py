"""Directus 12.4.0 from npm, a real server nobody here wrote: two-way sync under random edits.

The test set-up installs Directus (pinned; ~6 minutes the first time, begun in
the background when this module is collected; then cached under
``~/.cache/cdcsync/npm``), starts it on the stack's PostgreSQL (its
own database) on port 8055, or reuses the one running there, creates the
example's ``contacts`` collection and empties it. The example's configuration
(``examples/directus/cdcsync.yaml``: only ``rest`` settings, ``date_updated``
as the version) runs in one worker with a fresh consumer group (web port 6077)
for every seed. Each seed makes 200 random changes on both sides; then both
sides must agree under the mapping, hold one item per row, and stay quiet for
three poll intervals and more — counted on the audit topic and in Directus's
own activity log.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from cdcsync.errors import SinkPermanentError
from cdcsync.examples.convergence import Convergence
from cdcsync.examples.directus.run import (
    CONNECTOR,
    FOLDER,
    MAPPING,
    TOKEN_ENV,
    Directus,
    start_server,
)
from cdcsync.examples.runner import Example, edit_config
from cdcsync.sinks.providers.rest import RestSettings, RestSink
from cdcsync.stack import apis
from cdcsync.stack.settings import StackSettings

pytestmark = pytest.mark.integration

# Directus's first install takes ~6 minutes: start it as soon as this module is collected,
# detached, so it runs while the tests before this one do (the fixture then waits for it).
apis.install_in_background("directus")

WEB_PORT = 6077
SEEDS, STEPS = (1, 2, 3), 200


@pytest.fixture(scope="module")
def convergence(
    tmp_path_factory: pytest.TempPathFactory, running_stack: Any
) -> Iterator[Convergence]:
    def edit(data: dict[str, Any]) -> None:
        data["app"].update(id=f"cdcsync-it-directus-{uuid.uuid4().hex[:8]}", web_port=WEB_PORT)

    path = edit_config(FOLDER / "cdcsync.yaml", tmp_path_factory.mktemp("dx") / "c.yaml", edit)
    with Example(FOLDER, config_path=path, connector_path=CONNECTOR, say=print) as ex:
        ex.prepare()
        api = start_server(ex)
        assert api.token is not None
        side = Directus(api)
        side.clear()
        ex.start_worker(
            env={TOKEN_ENV: api.token}, log_path=ex.settings.logs_dir / "worker-it-directus.log"
        )
        yield Convergence(ex, side, table="dx_contact", mapping=MAPPING)
        side.close()


@pytest.mark.parametrize("seed", SEEDS)
def test_random_edits_on_both_sides_converge(convergence: Convergence, seed: int) -> None:
    report = convergence.run_seed(seed, STEPS)  # prints its figures
    assert report.problems() == []


async def test_a_natural_key_lookup_speaks_directus_filters(stack: StackSettings) -> None:
    """With the example's ``filter_param`` a lookup finds the one item, and with its
    ``find_many_param`` several; with forms Directus ignores (``?email=…``,
    ``?email__in=…``), find() and find_many() say so and never adopt another item."""
    api = apis.directus(stack, progress=print)
    apis.directus_collection(api, json.loads((FOLDER / "collection.json").read_text()))
    assert api.token is not None
    target = yaml.safe_load((FOLDER / "cdcsync.yaml").read_text())["integrations"]["directus"]
    settings = target["settings"] | {"collection_path": "/items/contacts", "object_type": "c"}
    sink = RestSink(RestSettings(**settings, token=SecretStr(api.token)))
    plain = RestSink(RestSettings(**(settings | {"filter_param": "{field}"}),
                                  token=SecretStr(api.token)))  # fmt: skip
    # Directus ignores an unknown query parameter: find_many must notice, not adopt.
    plain_many = RestSink(RestSettings(**(settings | {"find_many_param": "{field}__in"}),
                                       token=SecretStr(api.token)))  # fmt: skip
    try:
        other = await sink.create({"email": f"nk-{uuid.uuid4().hex[:8]}@example.org"})
        made = await sink.create({"email": f"nk-{uuid.uuid4().hex[:8]}@example.org"})
        assert made.row_id  # date_updated, stamped on create too
        found = await sink.find({"email": made.fields["email"]})
        assert found is not None and found.id == made.id
        with pytest.raises(SinkPermanentError, match=r"ignored the filters \['email'\]"):
            await plain.find({"email": made.fields["email"]})
        # Several values in one request: Directus's _in filter, as the gathered lookups send it.
        emails = [made.fields["email"], other.fields["email"], "nobody@example.org"]
        many = await sink.find_many("email", emails)
        assert many is not None and sorted(r.id for r in many) == sorted([made.id, other.id])
        # Directus ignores ?email__in=…: its answer is either full (None: one lookup each
        # instead) or holds an object that is none of the values (refused); never adopted.
        try:
            ignored = await plain_many.find_many("email", emails)
        except SinkPermanentError as exc:
            assert "ignored the filter on 'email'" in str(exc)
        else:
            assert ignored is None
        assert await sink.delete(other.id)
        assert await sink.delete(made.id)
    finally:
        await sink.aclose()
        await plain.aclose()
        await plain_many.aclose()
