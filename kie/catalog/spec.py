"""The shape of catalogue data.

Every model Kie.ai sells is one `ModelSpec` in a JSON file under `kie/catalog/data/models/`. The
sandbox, the client, the runner and the budget all read these objects, so a model is described once.
The classes are strict (`extra="forbid"`): a typo in a data file fails at import instead of silently
dropping a constraint that would have saved a paid request.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

FieldType = Literal["string", "integer", "number", "boolean", "array", "object"]
MediaKind = Literal["image", "video", "audio", "text"]
Lifecycle = Literal["active", "preview", "deprecated"]
ISODate = str
JsonScalar = str | int | float | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldSpec(_Strict):
    """One input field of a model.

    `type` may list several types where Kie demonstrably accepts more than one shape (a recorded real
    request sent an array where the docs say string). `enum_complete=False` marks enums the docs
    truncated: their values are shown as examples but not enforced, because rejecting a valid value
    locally would be as wrong as accepting an invalid one.
    """

    type: FieldType | tuple[FieldType, ...]
    required: bool = False
    description: str | None = None
    enum: tuple[JsonScalar, ...] | None = None
    enum_complete: bool = True
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    min_items: int | None = None
    max_items: int | None = None
    items: FieldType | None = None
    media: Literal["image", "video", "audio"] | None = Field(
        default=None,
        description="Set on URL inputs: a local path or bytes given here is uploaded first.",
    )
    note: str | None = Field(default=None, description="Why this differs from the docs, in words for users.")
    source: str | None = Field(
        default=None,
        description="Where the note's or description's evidence comes from; for maintainers only.",
    )

    @property
    def types(self) -> tuple[FieldType, ...]:
        return self.type if isinstance(self.type, tuple) else (self.type,)


class Endpoint(_Strict):
    """Where a model's requests go.

    Market models share `jobs/createTask`; legacy product families each have their own paths and body
    shape, named by `api` so the protocol layer can pick the family module. `fixed` holds body fields
    implied by the model id itself (Veo's `model: veo3_fast`, Midjourney's `taskType`).
    """

    kind: Literal["market", "legacy"] = "market"
    api: str = "market"
    create: str = "/api/v1/jobs/createTask"
    status: str = "/api/v1/jobs/recordInfo"
    fixed: dict[str, Any] = Field(default_factory=dict)
    requires_callback: bool = False


class Offer(_Strict):
    """A time-limited price Kie advertises (its pages call it `pricingDesc`), kept with its end date.

    A price copied during an offer silently goes stale when the offer ends, so the regular price stays
    the rule's base and the offer replaces it only until `ends` (inclusive, UTC). After that the estimate
    uses the regular price and `kie models check` reports the expired offer. `table` may name only the
    keys the offer covers; other keys keep the regular price.
    """

    credits: float | None = None
    table: dict[str, float] | None = None
    ends: ISODate = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    source: str
    note: str | None = None

    @model_validator(mode="after")
    def _one_base(self) -> Offer:
        if (self.credits is None) == (self.table is None):
            raise ValueError("an offer needs exactly one of `credits` or `table`")
        return self


class PriceRule(_Strict):
    """How many credits one task costs.

    The base is `credits`, or `table[key]` where the key joins the values of the `by` fields with "|"
    (booleans as `true`/`false`). The base is then multiplied by `units` when `per` is `second` or
    `output`: the value of `units_field` in the input, or `units_default`. A table key that is missing
    makes the estimate unknown, never zero. `input-second` is a rate per second of an input file (a
    driving audio, a source video) whose length the request does not carry: the rate is shown, but the
    estimate stays unknown rather than guessing a length.
    """

    credits: float | None = None
    by: tuple[str, ...] = ()
    table: dict[str, float] | None = None
    per: Literal["task", "second", "output", "input-second"] = "task"
    units_field: str | None = None
    units_default: float | None = None
    source: str
    note: str | None = None
    offer: Offer | None = None

    @model_validator(mode="after")
    def _one_base(self) -> PriceRule:
        if (self.credits is None) == (self.table is None):
            raise ValueError("a price rule needs exactly one of `credits` or `table`")
        if self.table is not None and not self.by:
            raise ValueError("a price table needs `by` fields")
        if self.per in ("second", "output") and self.units_field is None and self.units_default is None:
            raise ValueError(f"a per-{self.per} price needs `units_field` or `units_default`")
        return self


class Traits(_Strict):
    """The seeds' qualitative knowledge, used by `recommend` and by the sandbox's timing.

    Tiers run 1 (worst) to 5 (best); for speed, 5 is fastest. `typical_seconds` is a typical
    generation time, which drives both the sandbox's timing and the client's first poll.
    """

    speed: int = Field(default=3, ge=1, le=5)
    quality: int = Field(default=3, ge=1, le=5)
    typical_seconds: float = Field(default=30.0, gt=0)
    best_for: tuple[str, ...] = ()
    languages: tuple[str, ...] = ("en",)
    premium: bool = False


class Outputs(_Strict):
    """What a successful task returns, so the sandbox can fabricate it and the client can name files."""

    format: str = "png"
    format_field: str | None = None
    count: int = 1
    count_field: str | None = None


class ModelSpec(_Strict):
    id: str
    name: str
    family: str
    vendor: str | None = None
    media: MediaKind
    capabilities: tuple[str, ...]
    endpoint: Endpoint = Field(default_factory=Endpoint)
    fields: dict[str, FieldSpec]
    schema_published: bool = Field(
        default=True,
        description="False when the docs publish no input schema: inputs then pass through unchecked.",
    )
    price: PriceRule | None = None
    traits: Traits = Field(default_factory=Traits)
    outputs: Outputs = Field(default_factory=Outputs)
    status: Lifecycle = "active"
    docs_url: str | None = None
    notes: tuple[str, ...] = ()
    sources: tuple[str, ...] = Field(
        default=(), description="Where the notes' facts come from; for maintainers, not shown by default."
    )
    source: str | None = Field(
        default=None,
        description="Where the schema comes from, with the date it was read; for maintainers only.",
    )
    replacement: str | None = Field(
        default=None, description="The model to use instead, for a deprecated or vanished model."
    )
    form_of: str | None = Field(
        default=None,
        description="For a product API's createTask form: the model whose follow-ups and price it shares.",
    )

    @model_validator(mode="after")
    def _price_fields_exist(self) -> ModelSpec:
        if self.price is None:
            return self
        named = [*self.price.by, *([self.price.units_field] if self.price.units_field else [])]
        missing = [f for f in named if f not in self.fields and f not in self.endpoint.fixed]
        if missing and self.schema_published:
            raise ValueError(f"{self.id}: price rule names unknown fields {missing}")
        return self


class Alias(_Strict):
    """A name users or the seeds use for a model, often with an endpoint that does not exist."""

    target: str
    note: str | None = None
    source: str | None = Field(default=None, description="Who uses this name; for maintainers only.")
    input: dict[str, Any] = Field(
        default_factory=dict, description="Defaults the alias implies, e.g. a Midjourney speed."
    )


class Preset(_Strict):
    """A style, not a model: a prompt template plus the models it works best on."""

    name: str
    description: str
    template: str
    models: tuple[str, ...]
    negative_prompt: str | None = None
    source: str | None = Field(default=None, description="Where the advice comes from; not shown by default.")


class UseCase(_Strict):
    """One row of the seeds' selection guide, as weights over price, speed and quality."""

    description: str
    weights: dict[Literal["price", "speed", "quality"], float]
    prefer_tags: tuple[str, ...] = ()
    require_languages: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()
    reason: str
    source: str | None = Field(default=None, description="Where the advice comes from; not shown by default.")


class FollowUp(_Strict):
    """An operation on a finished task (upscale, vary, extend, …): the model that performs it, and which
    of its fields carry the original task id and the chosen output index."""

    model: str
    task_field: str
    index_field: str | None = None
