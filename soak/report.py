"""The soak's table: what ran, what was injected, and each check with its verdict."""

from __future__ import annotations

from collections import Counter
from typing import Any

__all__ = ["fault_counts", "render"]


def fault_counts(done: list[dict[str, Any]]) -> dict[str, str]:
    """Timed faults by kind: how many were carried out, and failures if any."""
    ok = Counter(d["kind"] for d in done if d.get("ok"))
    failed = Counter(d["kind"] for d in done if not d.get("ok"))
    return {k: f"{ok[k]}" + (f" ({failed[k]} failed)" if failed[k] else "")
            for k in sorted(ok.keys() | failed.keys())}  # fmt: skip


def render(report: dict[str, Any]) -> str:
    """Markdown table of the run's figures and checks."""
    w, d, api = report["workload"], report["durations_s"], report.get("api", {})
    statuses = api.get("by_status", {})
    rows: list[tuple[str, str, str]] = [
        ("workload", f"{w['changes']:,} changes: {w['inserts']:,} inserts, {w['updates']:,} "
         f"updates, {w['deletes']:,} deletes, {w['external_edits']:,} external edits; "
         f"{w['malformed']:,} malformed records", ""),
        ("durations", f"load {d.get('load')} s, drain {d.get('drain')} s, quiet "
         f"{d.get('quiet')} s, total {d.get('total')} s", ""),
        ("timed faults", ", ".join(f"{k} {v}" for k, v in report["faults"].items()) or "-", ""),
        ("API answers", ", ".join(f"{k}: {v:,}" for k, v in sorted(statuses.items())) or "-",
         ""),
        ("API faults fired", f"{api.get('faults_fired', 0):,}", ""),
        ("outcomes", f"{report['outcomes']['results']:,} results, "
         f"{report['outcomes']['dead_letters']:,} dead letters, "
         f"{report['outcomes']['redelivered']:,} redelivered, "
         f"{report['outcomes']['applied_again']:,} applied again", ""),
    ]  # fmt: skip
    rows += [(c["name"], c["figure"], "pass" if c["passed"] else "FAIL") for c in report["checks"]]
    nw = max(len(r[0]) for r in rows)
    vw = min(max(len(r[1]) for r in rows), 110)
    lines = [f"| {'figure'.ljust(nw)} | {'value'.ljust(vw)} | verdict |",
             f"|{'-' * (nw + 2)}|{'-' * (vw + 2)}|---------|"]  # fmt: skip
    lines += [f"| {n.ljust(nw)} | {v.ljust(vw)} | {k:<7} |" for n, v, k in rows]
    for c in report["checks"]:
        if not c["passed"]:
            lines.append(f"\nFAILED: {c['name']} ({c['figure']})")
            lines += [f"  - {e}" for e in c["evidence"]]
    for name, trace in report.get("traces", {}).items():
        lines.append(f"\nhistory of {name} (entity topic, outcomes, state writes):")
        lines += [f"  {line}" for line in trace]
    return "\n".join(lines)
