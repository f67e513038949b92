"""The bench's table: each figure beside its target."""

from __future__ import annotations

from typing import Any

__all__ = ["render"]


def _get(d: dict[str, Any], *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        v = f"{v:,.1f}" if abs(v) >= 10 else f"{v:.2f}"
    elif isinstance(v, int):
        v = f"{v:,}"
    return f"{v}{unit}"


def _check(ok: bool | None) -> str:
    return "" if ok is None else ("met" if ok else "MISSED")


Row = tuple[str, str, str, str]  # figure, value, target, verdict


def render(report: dict[str, Any], args: Any) -> str:
    """Markdown table of the figures, targets and verdicts."""
    rows = [
        *_throughput_rows(report, args),
        *_latency_rows(report, args),
        *_poll_state_rows(report),
    ]
    width = max(len(x[0]) for x in rows)
    vw = max(len(x[1]) for x in rows)
    lines = [
        f"| {'figure'.ljust(width)} | {'value'.ljust(vw)} | target   | verdict |",
        f"|{'-' * (width + 2)}|{'-' * (vw + 2)}|----------|---------|",
    ]
    for name, value, target, verdict in rows:
        lines.append(f"| {name.ljust(width)} | {value.ljust(vw)} | {target:<8} | {verdict:<7} |")
    m = report.get("machine", {})
    lines.append(
        f"\nmachine: {m.get('cpus')} CPUs, Python {m.get('python')}, {m.get('platform')}; "
        f"load average at start {tuple(round(x, 2) for x in m.get('load_avg_at_start', ()))}"
    )
    return "\n".join(lines)


def _throughput_rows(r: dict[str, Any], args: Any) -> list[Row]:
    """The workload, then end-to-end and drain throughput, CPU per change, and the ratios."""
    wk = r.get("workload", {})
    ratio_a, ratio_b = _get(r, "ratios", "cdcsync_over_a"), _get(r, "ratios", "cdcsync_over_b")
    single_a = _get(r, "ratios", "cdcsync_single_over_a")
    return [
        ("workload", f"{_fmt(wk.get('changes'))} changes ({_fmt(wk.get('seed_inserts'))} seed "
         f"inserts, {_fmt(wk.get('updates'))} updates, {_fmt(wk.get('inserts'))} inserts, "
         f"{_fmt(wk.get('deletes'))} deletes); API +{args.latency_ms} ms; "
         f"{args.connections} connections; cdcsync bulk_max {args.bulk}", "", ""),
        ("end to end, first commit -> last result",
         _fmt(_get(r, "end_to_end", "throughput"), " changes/s"), "", ""),
        ("  PostgreSQL load rate / Debezium done after",
         f"{_fmt(_get(r, 'end_to_end', 'load_rate'))}/s / "
         f"{_fmt(_get(r, 'end_to_end', 'debezium_lag_s'), ' s')}", "", ""),
        ("drain: cdcsync", _fmt(_get(r, "drain", "cdcsync", "throughput"), " changes/s"), "", ""),
        ("drain: cdcsync, one call per write (no bulk)",
         _fmt(_get(r, "drain", "cdcsync_single", "throughput"), " changes/s"), "", ""),
        ("drain: baseline (a) aiokafka -> httpx, concurrent",
         _fmt(_get(r, "drain", "baseline_a", "throughput"), " changes/s"), "", ""),
        ("drain: baseline (b) one request per event",
         _fmt(_get(r, "drain", "baseline_b", "throughput"), " changes/s"), "", ""),
        ("CPU per change: cdcsync / (a) / (b) (their process)",
         f"{_fmt(_get(r, 'drain', 'cdcsync', 'cpu_ms_per_change'))} / "
         f"{_fmt(_get(r, 'drain', 'baseline_a', 'cpu_ms_per_change'))} / "
         f"{_fmt(_get(r, 'drain', 'baseline_b', 'cpu_ms_per_change'), ' ms')}", "", ""),
        ("  of which coalesced into a later write: cdcsync / without bulk",
         f"{_fmt(_get(r, 'drain', 'cdcsync', 'coalesced'))} / "
         f"{_fmt(_get(r, 'drain', 'cdcsync_single', 'coalesced'))}", "", ""),
        ("cdcsync / baseline (a) (written changes)", _fmt(ratio_a, "x"), ">= 1.5x",
         _check(None if ratio_a is None else ratio_a >= 1.5)),
        ("cdcsync / baseline (b)", _fmt(ratio_b, "x"), ">= 20x",
         _check(None if ratio_b is None else ratio_b >= 20)),
        ("cdcsync without bulk / (a) (written changes)", _fmt(single_a, "x"), ">= 1.0x",
         _check(None if single_a is None else single_a >= 1.0)),
        ("cdcsync without bulk / (b)",
         _fmt(_get(r, "ratios", "cdcsync_single_over_b"), "x"), "", ""),
        ("CPU per change: cdcsync without bulk",
         _fmt(_get(r, "drain", "cdcsync_single", "cpu_ms_per_change"), " ms"), "", ""),
    ]  # fmt: skip


def _latency_rows(r: dict[str, Any], args: Any) -> list[Row]:
    """Commit-to-write latency at both steady rates, and API calls per change."""
    p99 = _get(r, "steady", "latency_p99_ms")
    # End to end, the API's own request count covers exactly the workload.
    calls = _get(r, "end_to_end", "api_calls_per_synced_change")
    slow_p99 = _get(r, "slow_api", "others_latency_p99_ms")
    return [
        (f"commit -> external write at {args.rate:g}/s, p50",
         _fmt(_get(r, "steady", "latency_p50_ms"), " ms"), "", ""),
        (f"commit -> external write at {args.rate:g}/s, p99", _fmt(p99, " ms"), "< 250 ms",
         _check(None if p99 is None else p99 < 250)),
        (f"commit -> external write at {args.low_rate:g}/s, p50 / p99",
         f"{_fmt(_get(r, 'steady_low', 'latency_p50_ms'))} / "
         f"{_fmt(_get(r, 'steady_low', 'latency_p99_ms'), ' ms')}", "", ""),
        ("saturation (highest rate with p99 < 250 ms): bulk / without",
         f"{_fmt(_get(r, 'saturation', 'bulk', 'saturation_rate'))} / "
         f"{_fmt(_get(r, 'saturation', 'single', 'saturation_rate'), ' changes/s')}", "", ""),
        (f"slow API (1% held past the timeout) at {args.low_rate:g}/s: others' p99",
         _fmt(slow_p99, " ms"), "< 250 ms", _check(None if slow_p99 is None else slow_p99 < 250)),
        ("  longest pause of all results / entities touched",
         f"{_fmt(_get(r, 'slow_api', 'longest_gap_ms'), ' ms')} / "
         f"{_fmt(_get(r, 'slow_api', 'touched_entities'))}", "", ""),
        ("API requests per synced change (end to end, the API's count)", _fmt(calls), "<= 2",
         _check(None if calls is None else calls <= 2)),
        ("  calls per change in cdcsync's results (a shared bulk call counts 1 each)",
         _fmt(_get(r, "drain", "cdcsync", "api_calls_per_synced_change")), "", ""),
        ("  baseline (a) API calls per write",
         _fmt(_get(r, "drain", "baseline_a", "api_calls_per_synced_change")), "", ""),
    ]  # fmt: skip


def _poll_state_rows(r: dict[str, Any]) -> list[Row]:
    """The poll and diff at both page sizes, then state size, recovery and start times."""
    poll = r.get("poll", {})
    poll100 = _get(poll, "page_size_100", "changed_pass_s")
    poll1000 = _get(poll, "page_size_1000", "changed_pass_s")
    return [
        (f"poll + diff of {_fmt(poll.get('records'))} records, page 100",
         _fmt(poll100, " s"), "< 2 s", _check(None if poll100 is None else poll100 < 2)),
        (f"poll + diff of {_fmt(poll.get('records'))} records, page 1000",
         _fmt(poll1000, " s"), "< 2 s", _check(None if poll1000 is None else poll1000 < 2)),
        ("state per entity (changelog key + value)",
         _fmt(_get(r, "state", "bytes_per_entity"), " B"), "", ""),
        (f"restart, recover {_fmt(_get(r, 'state', 'entities'))} entities "
         f"({_fmt(_get(r, 'state', 'records'))} changelog records)",
         _fmt(_get(r, "state", "restart_s"), " s"), "", ""),
        (f"restart, recover {_fmt(_get(r, 'state', 'synthetic_entities'))} entities (synthetic)",
         _fmt(_get(r, "state", "synthetic_restart_s"), " s"), "", ""),
        ("  of which table recovery (log: assigned -> Recovery complete)",
         f"{_fmt(_get(r, 'state', 'restart_recovery_s'))} / "
         f"{_fmt(_get(r, 'state', 'synthetic_recovery_s'), ' s')}", "", ""),
        ("  worker start with empty state", _fmt(_get(r, "state", "empty_start_s"), " s"), "", ""),
    ]  # fmt: skip
