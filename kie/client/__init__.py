"""The clients: `Kie` (blocking) and `AsyncKie` (asyncio), two drivers over the same protocol flows."""

from kie.client.aio import AsyncKie
from kie.client.results import Generation, Result, Submission
from kie.client.sync import Kie

__all__ = ["AsyncKie", "Generation", "Kie", "Result", "Submission"]
