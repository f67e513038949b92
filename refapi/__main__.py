"""``python -m cdcsync.refapi``: run the reference API until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys

from .server import serve

logger = logging.getLogger(__name__)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m cdcsync.refapi",
        description="Run the reference external API (records, auth, paging, fault injection).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    parser.add_argument("--port", type=int, default=8900, help="port to bind, 0 for any free one")
    parser.add_argument(
        "--token-env",
        metavar="NAME",
        help="require 'Authorization: Bearer <token>' with the token read from this variable",
    )
    parser.add_argument(
        "--latency-ms", type=int, default=0, help="latency added to every /api request"
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default %(default)s)")
    return parser.parse_args(argv)


async def _run(host: str, port: int, token: str | None, latency_ms: int) -> None:
    async with serve(host, port, token, latency_ms=latency_ms) as api:
        print(f"reference API on {api.url}  (admin: {api.url}/_admin/stats)", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, read the token from the environment, serve until Ctrl-C."""
    args = _parse(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    token = None
    if args.token_env:
        token = os.environ.get(args.token_env)
        if not token:
            print(f"error: environment variable {args.token_env} is not set", file=sys.stderr)
            return 2
    if args.latency_ms < 0:
        print("error: --latency-ms must not be negative", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(args.host, args.port, token, args.latency_ms))
    logger.info("reference API stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
