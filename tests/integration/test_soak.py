"""The quick chaos soak (``python -m cdcsync.soak --quick``) on the local stack: 10k changes
through two workers while workers are killed, Kafka Connect and the broker restart and the
API misbehaves. Every check must pass. It restarts the broker and Connect, so
it is skipped with ``CDCSYNC_SKIP_DISRUPTIVE=1``, and it puts the stack back (broker,
Connect, the demo connector running) for the tests after it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cdcsync.connect.register import connector_files, load, wait_running
from cdcsync.schemas.config import Config
from cdcsync.soak.report import render
from cdcsync.soak.run import main
from cdcsync.stack.settings import StackSettings
from cdcsync.streams.commands import stack_up

PORT_OFFSET = int(os.environ.get("CDCSYNC_IT_PORT_OFFSET", "0"))


@pytest.mark.skipif(
    os.environ.get("CDCSYNC_SKIP_DISRUPTIVE") == "1", reason="CDCSYNC_SKIP_DISRUPTIVE=1"
)
def test_the_quick_soak_passes_every_check(
    running_stack: StackSettings, config: Config, tmp_path: Path
) -> None:
    out = tmp_path / "soak.json"
    argv = ["--quick", "--out", str(out), "--api-port", str(8967 + PORT_OFFSET),
            "--web-port", str(6097 + PORT_OFFSET)]  # fmt: skip
    try:
        code = main(argv)
    finally:  # the soak restarted the broker and Connect: the demo connector runs again
        stack_up(config, progress=lambda _msg: None)
        wait_running(running_stack.connect_url, load(connector_files()[0]).name)
    report = json.loads(out.read_text())
    print(f"\nSOAK {json.dumps({k: report[k] for k in ('durations_s', 'faults', 'outcomes')})}")
    failed = [c["name"] for c in report["checks"] if not c["passed"]]
    assert not failed and not report["load_failures"], f"failed: {failed}\n{render(report)}"
    assert code == 0  # the soak's own verdict
