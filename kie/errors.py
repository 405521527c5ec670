"""Every error kie raises, as one tree.

    KieError
    ├── ConfigurationError         the local setup is wrong (no key, unreadable config file)
    ├── ValidationError            an input is wrong; caught locally before spend, or Kie's own 422
    │   └── UnknownModelError      the model name resolves to nothing; carries near matches
    ├── BudgetExceededError        submitting would pass the spending cap the user set
    ├── APIStatusError             Kie answered with a non-success envelope `code`
    │   ├── AuthenticationError    401: missing or wrong API key
    │   ├── InsufficientCreditsError 402: top up before submitting more
    │   ├── NotFoundError          404: the task or resource does not exist
    │   ├── RateLimitError         429 (and 433, a sub-key cap): nothing was created
    │   ├── MaintenanceError       455: Kie is in maintenance; nothing was created
    │   ├── ServerError            5xx other than 505
    │   └── FeatureDisabledError   505
    ├── TaskFailedError            the task ran and failed (`failCode`, `failMsg`)
    ├── TimeoutError               a deadline passed; the task may still be running on Kie
    ├── TransportError             the network failed on a request that is safe to report
    ├── SubmissionUnknownError     a create call may or may not have reached Kie: never resent
    ├── DownloadError              a finished result could not be saved to disk
    └── WebhookError               a callback failed verification (kie.webhooks; `reason` says why)

Why a tree: callers decide on the branch, not the leaf. `APIStatusError` means "Kie said no";
`SubmissionUnknownError` is deliberately *not* under it, because Kie said nothing and a retry could pay
twice. Every error carries the task id or job id when one is known, so nothing paid for is orphaned.

Kie returns business errors with HTTP 200, so the status code that selects the class is the envelope's
`code`, not the HTTP status. Messages never contain the API key: they are built from Kie's `msg` and
from ids, never from request headers.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass


class KieError(Exception):
    """Base class: `except kie.KieError` catches everything this package raises on purpose."""

    def __init__(self, message: str, *, task_id: str | None = None, job_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.task_id = task_id
        self.job_id = job_id

    def __str__(self) -> str:
        return self.message


class ConfigurationError(KieError):
    pass


@dataclass(frozen=True)
class Issue:
    """One thing wrong with one field, phrased so the sentence alone says what to do."""

    field: str
    problem: str
    suggestion: str | None = None

    def sentence(self) -> str:
        text = f"`{self.field}` {self.problem}"
        if self.suggestion is not None:
            text += f" (did you mean {self.suggestion!r}?)"
        return text


class ValidationError(KieError):
    """Raised before anything is sent whenever possible; `code` is 422 when Kie itself rejected it."""

    def __init__(
        self,
        message: str,
        *,
        issues: Sequence[Issue] = (),
        model: str | None = None,
        code: int | None = None,
        task_id: str | None = None,
        job_id: str | None = None,
    ) -> None:
        super().__init__(message, task_id=task_id, job_id=job_id)
        self.issues = tuple(issues)
        self.model = model
        self.code = code

    @classmethod
    def from_issues(cls, model: str, issues: Sequence[Issue]) -> ValidationError:
        body = "; ".join(issue.sentence() for issue in issues)
        noun = "field" if len(issues) == 1 else "fields"
        message = f"Invalid input for {model}: {body}. Fix the {noun} and try again."
        return cls(message, issues=issues, model=model)


class UnknownModelError(ValidationError):
    def __init__(self, name: str, suggestions: Sequence[str]) -> None:
        hint = f" Did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(
            f"Unknown model {name!r}.{hint} Run `kie models` to list every model.",
            model=name,
        )
        self.name = name
        self.suggestions = tuple(suggestions)


class BudgetExceededError(KieError):
    def __init__(self, message: str, *, spent: float, limit: float, job_id: str | None = None) -> None:
        super().__init__(message, job_id=job_id)
        self.spent = spent
        self.limit = limit


class APIStatusError(KieError):
    """Kie answered and said no. `code` is the envelope code; `http_status` the transport's."""

    def __init__(
        self,
        message: str,
        *,
        code: int,
        http_status: int = 200,
        task_id: str | None = None,
        job_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, task_id=task_id, job_id=job_id)
        self.code = code
        self.http_status = http_status
        self.retry_after = retry_after


class AuthenticationError(APIStatusError):
    pass


class InsufficientCreditsError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class RateLimitError(APIStatusError):
    pass


class MaintenanceError(APIStatusError):
    pass


class ServerError(APIStatusError):
    pass


class FeatureDisabledError(APIStatusError):
    pass


class TaskFailedError(KieError):
    def __init__(
        self,
        message: str,
        *,
        task_id: str | None,
        fail_code: str | None,
        fail_msg: str | None,
        job_id: str | None = None,
    ) -> None:
        super().__init__(message, task_id=task_id, job_id=job_id)
        self.fail_code = fail_code
        self.fail_msg = fail_msg


class TimeoutError(KieError, builtins.TimeoutError):
    """Also a builtin `TimeoutError`, so generic timeout handling catches it."""


class TransportError(KieError):
    pass


class SubmissionUnknownError(KieError):
    """The create request may have reached Kie. Resending could pay twice, so kie never does it itself.

    Resolve it with `kie jobs resolve`, or let a callback carrying the job's token reveal the task.
    """

    def __init__(self, message: str, *, model: str, job_id: str | None = None) -> None:
        super().__init__(message, job_id=job_id)
        self.model = model


class DownloadError(KieError):
    def __init__(self, message: str, *, url: str, task_id: str | None = None) -> None:
        super().__init__(message, task_id=task_id)
        self.url = url
