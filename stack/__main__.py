"""`python -m cdcsync.stack up|down|status`: drive the local stack without the Faust app."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from cdcsync.errors import CdcsyncError
from cdcsync.stack.kafka import TopicSpec
from cdcsync.stack.local import demo_defaults, down, format_status, status, up
from cdcsync.stack.settings import StackSettings


def _topic(text: str) -> TopicSpec:
    """NAME or NAME:PARTITIONS (partitions default to CDCSYNC_PARTITIONS)."""
    name, _, count = text.partition(":")
    try:
        return TopicSpec(name, int(count) if count else StackSettings().partitions)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cdcsync.stack", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser(
        "up", help="start (or reuse) PostgreSQL, Kafka, Connect; register connectors"
    )
    p_up.add_argument(
        "--sql", action="append", metavar="FILE", help="SQL file to apply (repeatable)"
    )
    p_up.add_argument(
        "--topic", action="append", type=_topic, metavar="NAME[:N]", help="topic to create"
    )
    p_up.add_argument(
        "--connector", action="append", metavar="FILE", help="connector JSON to register"
    )
    p_up.add_argument(
        "--no-demo",
        action="store_true",
        help="no defaults (demo schema, cdcsync.contact, connect/*.json)",
    )
    p_up.add_argument(
        "--secure", action="store_true", help="add a SASL_SSL listener (CDCSYNC_SECURE_PORT)"
    )
    p_up.add_argument(
        "--brokers",
        type=int,
        metavar="N",
        help="a KRaft cluster of N brokers on loopback (CDCSYNC_BROKERS; ports +100 per node)",
    )
    p_down = sub.add_parser("down", help="stop what `up` started")
    p_down.add_argument("--wipe", action="store_true", help="also drop slots and delete all data")
    sub.add_parser("status", help="show each part of the stack")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; errors print what to do next and exit 1."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    try:
        if args.command == "up":
            sql, topics, connectors = ([], [], []) if args.no_demo else demo_defaults()
            up(
                sql_files=args.sql if args.sql is not None else sql,
                topics=args.topic if args.topic is not None else topics,
                connector_files=args.connector if args.connector is not None else connectors,
                secure=args.secure,
                brokers=args.brokers,
            )
            print(format_status(status()))
        elif args.command == "down":
            down(wipe=args.wipe)
        else:
            statuses = status()
            print(format_status(statuses))
            return 0 if all(s.running for s in statuses) else 3
    except CdcsyncError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
