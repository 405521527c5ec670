"""kie: the Python toolkit for Kie.ai.

    import kie
    with kie.Kie() as client:
        gen = client.generate("nano-banana-pro", prompt="a lighthouse at dawn", output_dir="out")

Every model is validated and priced before a credit is spent (`kie.catalog`), a create is never
resent when its fate is unknown, and results are on disk before their links expire.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kie.errors import (
    APIStatusError,
    AuthenticationError,
    BudgetExceededError,
    ConfigurationError,
    DownloadError,
    FeatureDisabledError,
    InsufficientCreditsError,
    KieError,
    MaintenanceError,
    NotFoundError,
    RateLimitError,
    ServerError,
    SubmissionUnknownError,
    TaskFailedError,
    TimeoutError,
    TransportError,
    UnknownModelError,
    ValidationError,
)

if TYPE_CHECKING:
    from kie import catalog
    from kie.client import AsyncKie, Generation, Kie, Result, Submission
    from kie.protocol.task import TaskState, TaskStatus

# The clients pull in httpx and pydantic and the catalogue; they load on first use, so that `kie
# --help` and scripts that only need the errors start at once.
_LAZY = {
    "AsyncKie": "kie.client",
    "Generation": "kie.client",
    "Kie": "kie.client",
    "Result": "kie.client",
    "Submission": "kie.client",
    "TaskState": "kie.protocol.task",
    "TaskStatus": "kie.protocol.task",
    "catalog": "kie.catalog",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kie' has no attribute {name!r}")
    loaded = importlib.import_module(module)
    value = loaded if name == "catalog" else getattr(loaded, name)
    globals()[name] = value
    return value


__version__ = "0.1.0"

__all__ = [
    "APIStatusError",
    "AsyncKie",
    "AuthenticationError",
    "BudgetExceededError",
    "ConfigurationError",
    "DownloadError",
    "FeatureDisabledError",
    "Generation",
    "InsufficientCreditsError",
    "Kie",
    "KieError",
    "MaintenanceError",
    "NotFoundError",
    "RateLimitError",
    "Result",
    "ServerError",
    "Submission",
    "SubmissionUnknownError",
    "TaskFailedError",
    "TaskState",
    "TaskStatus",
    "TimeoutError",
    "TransportError",
    "UnknownModelError",
    "ValidationError",
    "catalog",
]
