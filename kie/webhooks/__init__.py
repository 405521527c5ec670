"""Kie callbacks done right: verification (`verify`), and a receiver (`app`, `Receiver`, `kie serve`).

Kie's signature covers only `taskId.timestamp`, never the body, so a verified callback is a hint: the
receiver re-reads the task from the API and records that answer.
"""

from kie.webhooks.receiver import CALLBACK_PATH, Receiver, app, callback_url
from kie.webhooks.verify import ReplayCache, VerifiedCallback, WebhookError, sign, verify

__all__ = [
    "CALLBACK_PATH",
    "Receiver",
    "ReplayCache",
    "VerifiedCallback",
    "WebhookError",
    "app",
    "callback_url",
    "sign",
    "verify",
]
