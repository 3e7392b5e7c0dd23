"""`python -m consistency_audit [--full] [--json]` (`make audit`): one pass over the running stack; exit 0 when
consistent, 1 when any discrepancy exists, 2 when a source could not be read.

Incremental by default: the pass starts from the state the last run left in AUDIT_STATE_FILE (.stack/), and writes
it back; the first run, or `--full`, reads everything."""

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

from consistency_audit.auditor import Auditor, Verdict
from consistency_audit.config import AuditSettings
from consistency_audit.reconcile import AuditState
from consistency_audit.report import render


def load_state(path: Path) -> AuditState | None:
    try:
        return AuditState.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # none yet, or unreadable: a full pass rebuilds it


def save_state(path: Path, ledger: AuditState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, prefix=".audit-") as out:
        json.dump(ledger.to_json(), out, separators=(",", ":"))
    os.replace(out.name, path)


async def run(settings: AuditSettings, full: bool) -> Verdict:
    auditor = Auditor(settings, None if full else load_state(settings.audit_state_file))
    try:
        verdict = await auditor.run(full=full)
    finally:
        await auditor.close()
    if auditor.ledger is not None:
        save_state(settings.audit_state_file, auditor.ledger)
    return verdict


def parse_since(text: str) -> dt.datetime:
    if text.startswith("-") and text[1:].replace(".", "", 1).isdigit():
        return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=float(text[1:]))
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m consistency_audit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="read everything, not only what changed since last run")
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")
    parser.add_argument(
        "--since",
        metavar="WHEN",
        help="judge only orders created from then on: an ISO 8601 time, or -N for N seconds ago (default: all)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = AuditSettings()
    if args.since:
        settings = settings.model_copy(update={"audit_since": parse_since(args.since)})
    try:
        verdict = asyncio.run(run(settings, args.full))
    except Exception as exc:  # a source is down or refuses us: say which, and that no verdict was reached
        print(f"audit: no verdict, a source could not be read: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(2)
    if args.json:
        print(json.dumps(verdict.as_json(settings.audit_ids_shown), indent=2))
    else:
        print(render(verdict, settings.audit_ids_shown))
    sys.exit(0 if verdict.consistent else 1)


if __name__ == "__main__":
    main()
