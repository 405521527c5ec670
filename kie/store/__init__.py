"""The job ledger (SQLAlchemy 2; SQLite by default, PostgreSQL by URL).

Job states and the only moves between them:

    pending ─claim─▶ submitting ─task id─▶ running ─▶ succeeded ─saved─▶ done
       ▲                 │  │                 │
       └─ definitive ────┘  │                 └─▶ failed   (generation failed; not charged)
          refusal (402,     ├─▶ rejected      (Kie's 422: the input is wrong)
          429, 455)         └─▶ unknown ─evidence─▶ running   (a callback or a late answer names the task)
                                   └─ user decides ─▶ pending (resubmit) | abandoned

`unknown` is the honest state for a create whose outcome was lost: it is shown to the user and never
resent without their decision.

With several processes on one store, a `succeeded` job is saved by whoever holds its download claim
(`claim_download`, a lease), into file names that belong to it alone (`claim_stem`), and a callback is
accepted once however often it is replayed (`seen_callback`).
"""

from kie.store.ledger import (
    ABANDONED,
    DONE,
    FAILED,
    FINISHED,
    IN_FLIGHT,
    PENDING,
    REJECTED,
    RUNNING,
    STATES,
    SUBMITTING,
    SUCCEEDED,
    UNKNOWN,
    Ledger,
    NewJob,
    Record,
    default_store_url,
    mask_url,
)

__all__ = [
    "ABANDONED",
    "DONE",
    "FAILED",
    "FINISHED",
    "IN_FLIGHT",
    "PENDING",
    "REJECTED",
    "RUNNING",
    "STATES",
    "SUBMITTING",
    "SUCCEEDED",
    "UNKNOWN",
    "Ledger",
    "NewJob",
    "Record",
    "default_store_url",
    "mask_url",
]
