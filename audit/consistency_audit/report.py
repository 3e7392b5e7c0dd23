"""The verdict as text for people (the CLI's default output)."""

from consistency_audit.auditor import Verdict
from consistency_audit.reconcile import DEAD_LETTERED_TEXT, KIND_TEXT


def _listed(ids: list[str], ids_shown: int) -> str:
    more = len(ids) - ids_shown
    return ", ".join(ids[:ids_shown]) + (f" ... (+{more} more)" if more > 0 else "")


def render(verdict: Verdict, ids_shown: int = 50) -> str:
    mode = "full" if verdict.full else "incremental"
    lines = [
        f"audit ({mode} pass, {verdict.reason}) at {verdict.started_at:%Y-%m-%d %H:%M:%S} UTC: "
        f"{verdict.duration_seconds:.3f} s, {verdict.records_read} records and {verdict.rows_read} rows read, "
        f"{verdict.watched} orders still watched",
    ]
    for kind, ids in verdict.discrepancies.items():
        if ids:
            lines.append(f"  {kind.value} ({len(ids)}): {KIND_TEXT[kind]}")
            lines.append(f"      {_listed(ids, ids_shown)}")
    if verdict.dead_lettered:
        lines.append(f"  dead-lettered ({len(verdict.dead_lettered)}), not a discrepancy: {DEAD_LETTERED_TEXT}")
        lines.append(f"      {_listed(verdict.dead_lettered, ids_shown)}")
    lines.append("verdict: consistent" if verdict.consistent else "verdict: INCONSISTENT")
    return "\n".join(lines)
