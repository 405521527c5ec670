"""kie: the Python toolkit for Kie.ai.

    import kie
    with kie.Kie() as client:
        gen = client.generate("nano-banana-pro", prompt="a lighthouse at dawn", output_dir="out")

Every model is validated and priced before a credit is spent (`kie.catalog`), a create is never
resent when its fate is unknown, and results are on disk before their links expire.
"""

from kie import catalog
from kie.client import AsyncKie, Generation, Kie, Result, Submission
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
from kie.protocol.task import TaskState, TaskStatus

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
