"""From a Recommendation to the equipment: the safety envelope's checker (:mod:`.envelope`) and the
hash-chained audit trail (:mod:`.audit`). docs/gateway.md explains both. The virtual plant
(:mod:`.plant`, ``twinopt plant``, extra ``[gateway]``) is imported on its own: docs/plant.md."""
from studio.gateway.audit import DEFAULT_LOG, AuditLog, AuditTampered
from studio.gateway.envelope import (
    Change,
    CheckedPlan,
    PlannedChange,
    Step,
    Verdict,
    Violation,
    Write,
    authentic,
    check,
    recheck,
)

__all__ = ["DEFAULT_LOG", "AuditLog", "AuditTampered", "Change", "CheckedPlan", "PlannedChange", "Step", "Verdict",
           "Violation", "Write", "authentic", "check", "recheck"]
