"""json-server 0.17.4 from npm, a real server nobody here wrote: two-way sync under random edits.

The test set-up installs json-server (pinned, cached under ``~/.cache/cdcsync/npm``)
and starts it on its own port (8946) on an empty collection; the example's
configuration (``examples/jsonserver/cdcsync.yaml``: only ``rest`` settings,
``poll.version: hash``) runs in one worker with a fresh consumer group (web port
6076) for every seed. Each seed makes 200 random changes on both sides, then
both sides must agree under the mapping, hold one object per row, and stay
quiet (no write) for three poll intervals and more.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cdcsync.errors import SinkError
from cdcsync.examples.convergence import Convergence
from cdcsync.examples.jsonserver.run import FOLDER, MAPPING, JsonServer
from cdcsync.examples.runner import Example, edit_config
from cdcsync.sinks.providers.rest import RestSettings, RestSink
from cdcsync.stack import apis
from cdcsync.stack.settings import StackSettings

pytestmark = pytest.mark.integration

API_PORT, WEB_PORT = 8946, 6076
SEEDS, STEPS = (1, 2, 3), 200


@pytest.fixture(scope="module")
def convergence(
    tmp_path_factory: pytest.TempPathFactory, running_stack: Any
) -> Iterator[Convergence]:
    def edit(data: dict[str, Any]) -> None:
        data["app"].update(id=f"cdcsync-it-jsonserver-{uuid.uuid4().hex[:8]}", web_port=WEB_PORT)
        data["integrations"]["addressbook"]["settings"]["base_url"] = f"http://127.0.0.1:{API_PORT}"

    path = edit_config(FOLDER / "cdcsync.yaml", tmp_path_factory.mktemp("js") / "c.yaml", edit)
    with Example(FOLDER, config_path=path, say=print) as ex:
        ex.prepare()
        api = apis.json_server(ex.settings, port=API_PORT, fresh=True, progress=print)
        try:
            ex.start_worker(log_path=ex.settings.logs_dir / "worker-it-jsonserver.log")
            side = JsonServer(api.url)
            yield Convergence(ex, side, table="js_contact", mapping=MAPPING)
            side.close()
        finally:
            apis.stop("json-server", API_PORT, ex.settings)  # a server of this test's own


@pytest.mark.parametrize("seed", SEEDS)
def test_random_edits_on_both_sides_converge(convergence: Convergence, seed: int) -> None:
    report = convergence.run_seed(seed, STEPS)  # prints its figures
    assert report.problems() == []


# -- the listing settings, straight against the real server (no worker) ----------------

LISTING = {
    "collection_path": "/contacts", "object_type": "contact", "auth": "none",
    "items_path": "", "object_path": "", "next_path": None, "limit_param": "_limit",
    "page_size": 2, "version_source": "none",
}  # fmt: skip
PAGINGS = {
    "page": {"paging": "page", "page_param": "_page", "total_header": "X-Total-Count"},
    "page, short page ends": {"paging": "page", "page_param": "_page"},
    "offset (_start)": {"paging": "offset", "offset_param": "_start"},
    "none": {"paging": "none"},
    # json-server sends Link only to a request that names a page: list_params names it.
    "link_header, _page asked": {"paging": "link_header", "list_params": {"_page": "1"}},
}


@pytest.fixture(scope="module")
def seven(stack: StackSettings) -> Iterator[str]:
    """json-server on its own port holding 7 contacts (no Kafka needed); its URL."""
    settings = stack
    api = apis.json_server(settings, port=API_PORT + 1, fresh=True, progress=print)
    with httpx.Client(base_url=api.url) as client:
        for i in range(7):
            client.post("/contacts", json={"email": f"p{i}@example.org"}).raise_for_status()
    yield api.url
    apis.stop("json-server", API_PORT + 1, settings)


async def test_a_link_header_listing_that_stops_short_of_the_total_raises(seven: str) -> None:
    # No page named in the first request: json-server sends no Link header, after 2 of 7.
    settings = {"paging": "link_header", "total_header": "X-Total-Count"}
    sink = RestSink(RestSettings(**LISTING, **settings, base_url=seven))
    try:
        with pytest.raises(SinkError, match="ended after 2 of the 7 objects"):
            _ = [record.id async for record in sink.list()]
    finally:
        await sink.aclose()


@pytest.mark.parametrize("paging", PAGINGS.values(), ids=list(PAGINGS))
async def test_every_paging_lists_all_of_json_server(seven: str, paging: dict[str, Any]) -> None:
    sink = RestSink(RestSettings(**LISTING, **paging, base_url=seven))
    try:
        listed = [record.id async for record in sink.list()]
    finally:
        await sink.aclose()
    assert sorted(listed, key=int) == [str(i) for i in range(1, 8)]
