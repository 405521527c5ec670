"""What the tools take and return, as Pydantic models: the return annotation is each tool's output schema.

Every field here is paid for in the agent's context on every `tools/list`, so names are short and
descriptions are only where a name alone would mislead.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class JobIn(BaseModel):
    model: str = Field(description="Model id from search_models")
    input: dict[str, Any] = Field(default_factory=dict, description="Fields as get_model lists them")
    label: str | None = Field(None, max_length=80, description="Short name for the files")


class ModelCard(BaseModel):
    id: str
    name: str
    media: str
    capabilities: list[str]
    credits: float | None = Field(description="Default-input price; null when unknown")
    typical_seconds: float
    speed: int
    quality: int
    best_for: list[str]


class ModelDetail(BaseModel):
    id: str
    name: str
    media: str
    family: str
    status: str
    capabilities: list[str]
    input_schema: dict[str, Any]
    price_rule: dict[str, Any] | None
    default_credits: float | None
    typical_seconds: float
    notes: list[str]
    docs_url: str | None


class Option(BaseModel):
    model: str
    credits: float | None
    reason: str


class Recommendation(BaseModel):
    primary: Option | None
    alternatives: list[Option]
    ladder: list[Option] = Field(description="Cheapest first: try the first, move up if not good enough")
    rationale: str


class Budget(BaseModel):
    auto_approve_credits: float
    per_call: float | None
    session_spent: float
    session_cap: float | None
    today_spent: float
    day_cap: float | None
    ledger_committed: float
    total_cap: float | None
    read_only: bool
    models_allowed: list[str] = Field(description="Empty: every model")


class JobCost(BaseModel):
    model: str
    credits: float | None
    basis: str


class Estimate(BaseModel):
    jobs: list[JobCost]
    total_credits: float | None
    total_usd: float | None
    unknown_prices: list[str]
    needs_approval: bool = Field(description="Above the auto-approve threshold: a human is asked")
    refused: str | None = Field(description="Why a generate of these jobs would be refused")
    budget: Budget


class FileOut(BaseModel):
    path: str
    sha256: str
    size: int
    mime: str | None
    uri: str


class JobOut(BaseModel):
    job_id: str
    batch_id: str | None
    position: int | None
    label: str | None
    model: str
    state: str = Field(
        description="pending|submitting|running|succeeded|done|failed|rejected|unknown|abandoned"
    )
    task_id: str | None
    credits_estimated: float | None
    credits_charged: float | None
    seconds: float | None
    files: list[FileOut]
    error: str | None


class Quote(BaseModel):
    quote_id: str
    credits: float
    expires_at: float
    approve_command: str


class GenerateOut(BaseModel):
    status: Literal["done", "pending", "declined", "confirmation_required", "refused"]
    message: str
    batch_id: str | None = None
    credits_estimated: float | None = None
    jobs: list[JobOut] = Field(default_factory=list)
    pending_job_ids: list[str] = Field(default_factory=list)
    quote: Quote | None = None
    gallery_url: str | None = None


class WaitOut(BaseModel):
    jobs: list[JobOut]
    still_running: list[str]
    message: str


class JobsOut(BaseModel):
    jobs: list[JobOut]


class Balance(BaseModel):
    credits: float | None = Field(description="Kie account balance; null when it cannot be read")
    budget: Budget


class Upload(BaseModel):
    url: str
    expires: str = Field(description="Kie keeps uploads about 3 days")


class GalleryLink(BaseModel):
    url: str
    note: str
