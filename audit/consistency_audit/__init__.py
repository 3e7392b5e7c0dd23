"""The consistency auditor: reconciles the orders topic, the stock topic, mydb.orders, catalog-service's ledger and
the stock, and says "consistent" or names every discrepancy with its order ids (see auditor.py)."""

from consistency_audit.auditor import Auditor, Verdict, audit_once
from consistency_audit.config import AuditSettings
from consistency_audit.reconcile import Kind

__all__ = ["AuditSettings", "Auditor", "Kind", "Verdict", "audit_once"]
