"""Spending from the gallery: re-run, edit and re-run, escalate. Each goes through the CLI's machinery.

A spending action is a one-job batch (`gallery-<session>-<n>`) run by the same `BatchRunner` as
`kie batch run`, in this process as a background asyncio task: the job row is committed before its
create is sent, and the ledger's budget check in `claim_for_submit` guards the claim. The gallery
never calls Kie itself.

The budget is the gallery session's, as `--max-credits` is a batch's in the CLI: everything this
gallery process starts, spent and in flight, plus the new job, must stay within the cap. The check runs
before anything is written (a refusal leaves the ledger as it was), and the batch is created with the
remaining room as its own cap, so the runner refuses too should two clicks race.

Relations: a re-run and an edited re-run record `relation='rerun'`, an escalation `'escalate'` (a
different model, the next rung of the use case's ladder), each with `parent_job_id` set.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kie.errors import BudgetExceededError, ConfigurationError, KieError, ValidationError
from kie.gallery.queries import Gallery
from kie.store import Ledger, NewJob

if TYPE_CHECKING:
    from kie.catalog.spec import ModelSpec
    from kie.client import AsyncKie
    from kie.config import Settings

KINDS = ("rerun", "edit", "escalate")
RELATION = {"rerun": "rerun", "edit": "rerun", "escalate": "escalate"}
NO_KEY = (
    "This gallery has no Kie.ai API key, so it cannot spend: set KIE_API_KEY and restart `kie gallery`, "
    "or use `kie gallery --sandbox` to try re-runs on the built-in sandbox."
)


@dataclass(frozen=True)
class Budget:
    cap: float | None
    spent: float
    in_flight: float

    @property
    def used(self) -> float:
        return self.spent + self.in_flight

    @property
    def remaining(self) -> float | None:
        return None if self.cap is None else max(0.0, self.cap - self.used)


@dataclass(frozen=True)
class Quote:
    """What an action would cost and whether the budget lets it: shown before the user confirms."""

    kind: str
    job_id: str
    model: str
    input: dict[str, Any]
    credits: float | None
    usd: float | None
    budget: Budget
    refusal: str | None

    @property
    def allowed(self) -> bool:
        return self.refusal is None


class Actions:
    def __init__(
        self,
        ledger: Ledger,
        gallery: Gallery,
        *,
        settings: Settings | None,
        output_dir: Path,
        max_credits: float | None,
        client_factory: Callable[[], AsyncKie] | None = None,
        poll_scale: float = 1.0,
        create_interval: float = 0.5,
        usd_per_credit: float = 0.005,
    ) -> None:
        self.ledger = ledger
        self.gallery = gallery
        self.settings = settings
        self.output_dir = output_dir
        self.max_credits = max_credits
        self.session = secrets.token_hex(4)
        self.prefix = f"gallery-{self.session}-"
        self.usd_per_credit = usd_per_credit
        self.create_interval = create_interval
        self.poll_scale = poll_scale
        self._factory = client_factory
        self._numbers = itertools.count(1)
        self._lock = asyncio.Lock()
        self.tasks: dict[str, asyncio.Task[Any]] = {}
        self.errors: dict[str, str] = {}

    @property
    def can_spend(self) -> bool:
        return self._factory is not None or (self.settings is not None and bool(self.settings.api_key))

    def budget(self) -> Budget:
        spent, flight = self.gallery.sums(self.prefix)
        return Budget(self.max_credits, spent, flight)

    # -- pricing --------------------------------------------------------------------------------
    def plan(
        self, job_id: str, kind: str, edited: Mapping[str, Any] | None = None
    ) -> tuple[ModelSpec, dict[str, Any]]:
        """The model and validated input the action would submit (a `ValidationError` if invalid)."""
        from kie import catalog

        if kind not in KINDS:
            raise ValidationError(f"Unknown action {kind!r}; use one of {', '.join(KINDS)}.")
        job = self.ledger.job(job_id)
        if job is None:
            raise ValidationError(
                f"No job {job_id!r} in this ledger; reload the gallery to see current jobs."
            )
        spec = catalog.get(job["model"])
        values: dict[str, Any] = dict(job["input"] or {})
        if kind == "edit":
            values = dict(edited or {})
        elif kind == "escalate":
            spec = next_rung(spec)
            values = _carry_over(values, spec)
        checked = catalog.validate(spec, values, allow_local_files=False)
        return spec, dict(checked.input)

    def quote(self, job_id: str, kind: str, edited: Mapping[str, Any] | None = None) -> Quote:
        from kie import catalog

        spec, values = self.plan(job_id, kind, edited)
        overrides = self.settings.price_overrides if self.settings is not None else {}
        estimate = catalog.estimate(spec, values, overrides=overrides)
        credits = estimate.credits
        budget = self.budget()
        refusal = None
        if not self.can_spend:
            refusal = NO_KEY
        elif credits is None and budget.cap is not None:
            refusal = (
                f"The price of {spec.id} is unknown ({estimate.basis}), so it cannot be checked against the "
                f"gallery's budget of {budget.cap:g} credits; run it with `kie generate` instead."
            )
        elif budget.remaining is not None and (credits or 0.0) > budget.remaining + 1e-9:
            refusal = (
                f"This would cost {credits:g} credits, more than the {budget.remaining:g} left of the "
                f"gallery's budget of {budget.cap:g} credits ({budget.used:g} spent or in flight); "
                "restart `kie gallery` with a higher --max-credits to allow it."
            )
        usd = None if credits is None else credits * self.usd_per_credit
        return Quote(kind, job_id, spec.id, values, credits, usd, budget, refusal)

    # -- spending -------------------------------------------------------------------------------
    async def start(self, job_id: str, kind: str, edited: Mapping[str, Any] | None = None) -> str:
        """Record the new job and start its run in the background; returns its id. Refused (nothing
        written) when the budget or the setup does not allow it."""
        async with self._lock:
            quote = self.quote(job_id, kind, edited)
            if quote.refusal is not None:
                if not self.can_spend:
                    raise ConfigurationError(quote.refusal)
                raise BudgetExceededError(
                    quote.refusal, spent=quote.budget.used, limit=quote.budget.cap or 0.0, job_id=job_id
                )
            batch_id = f"{self.prefix}{next(self._numbers)}"
            room = quote.budget.remaining
            (new_id,) = self.ledger.add_batch(
                batch_id,
                source=None,
                output_dir=str(self.output_dir),
                options={"max_credits": room, "gallery": {"action": kind, "from": job_id}},
                jobs=[
                    NewJob(
                        quote.model,
                        quote.input,
                        row_key="1",
                        row_line=1,
                        parent_job_id=job_id,
                        relation=RELATION[kind],
                        estimated_credits=quote.credits,
                    )
                ],
            )
        task = asyncio.get_running_loop().create_task(self._run(batch_id, room))
        self.tasks[new_id] = task
        task.add_done_callback(lambda _done: self.tasks.pop(new_id, None))
        return new_id

    def _client(self) -> AsyncKie:
        if self._factory is not None:
            return self._factory()
        from kie.client import AsyncKie
        from kie.protocol.polling import PollPolicy

        if self.settings is None or not self.settings.api_key:
            raise ConfigurationError(NO_KEY)
        return AsyncKie(settings=self.settings, poll=PollPolicy(scale=self.poll_scale), create_interval=None)

    async def _run(self, batch_id: str, room: float | None) -> None:
        from kie.runner.engine import BatchRunner, RunOptions

        options = RunOptions(
            output_dir=self.output_dir, max_credits=room, create_interval=self.create_interval
        )
        try:
            async with self._client() as client:
                result = await BatchRunner(self.ledger, client, batch_id, options).run()
            if result.stopped_reason:
                self.errors[batch_id] = result.stopped_reason
        except KieError as exc:
            self.errors[batch_id] = str(exc)

    async def close(self) -> None:
        """Stop waiting for runs still going (the server is shutting down); the ledger keeps them, and
        `kie batch resume` picks each up where it stopped."""
        for task in list(self.tasks.values()):
            task.cancel()
        for task in list(self.tasks.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def next_rung(spec: ModelSpec) -> ModelSpec:
    """The next model up the escalation ladder of this model's media kind."""
    from kie import catalog

    data = catalog.load()
    ladder = list(data.escalation.get(spec.media, ()))
    if spec.id in ladder:
        position = ladder.index(spec.id)
        if position + 1 < len(ladder):
            return data.models[ladder[position + 1]]
        raise ValidationError(
            f"{spec.id} is already the last rung of the {spec.media} ladder ({' → '.join(ladder)}); "
            "use edit and re-run to change its input instead."
        )
    own = catalog.estimate(spec, {}, overrides={}).credits or 0.0
    for model_id in ladder:
        rung = data.models[model_id]
        price = catalog.estimate(rung, {}, overrides={}).credits
        if price is not None and price > own:
            return rung
    raise ValidationError(
        f"{spec.id} has no escalation ladder above it for {spec.media}; pick another model with edit "
        "and re-run."
    )


def _carry_over(values: Mapping[str, Any], spec: ModelSpec) -> dict[str, Any]:
    """The input for another model: the prompt, and the fields the new model also has and accepts."""
    from kie import catalog

    prompt = next((values[k] for k in ("prompt", "text", "content") if isinstance(values.get(k), str)), None)
    base: dict[str, Any] = {"prompt": prompt} if prompt is not None and "prompt" in spec.fields else {}
    shared = {**base, **{k: v for k, v in values.items() if k in spec.fields and k != "prompt"}}
    try:
        catalog.validate(spec, shared, allow_local_files=False)
        return shared
    except ValidationError:
        return base


def form_fields(spec: ModelSpec, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The edit form, one entry per catalogue field: what widget, its choices and current value."""
    out = []
    for name, field in spec.fields.items():
        kinds = field.types
        current = values.get(name, field.default)
        widget = "text"
        if field.enum:
            widget = "select"
        elif kinds == ("boolean",):
            widget = "checkbox"
        elif kinds[0] in ("integer", "number") and len(kinds) == 1:
            widget = "number"
        elif kinds[0] in ("array", "object"):
            widget = "json"
        elif name in ("prompt", "negative_prompt", "text", "lyrics") or (field.max_length or 0) > 200:
            widget = "textarea"
        if widget == "json" and current is not None:
            import json

            current = json.dumps(current)
        out.append(
            {
                "name": name,
                "widget": widget,
                "required": field.required,
                "choices": [str(choice) for choice in field.enum or ()],
                "value": "" if current is None else current,
                "description": field.description or "",
                "minimum": field.minimum,
                "maximum": field.maximum,
                "step": "1" if kinds[0] == "integer" else "any",
            }
        )
    return out


def parse_form(spec: ModelSpec, form: Mapping[str, str]) -> dict[str, Any]:
    """Form values back to typed input: empty fields are left out (the model's default applies)."""
    import json

    values: dict[str, Any] = {}
    for name, field in spec.fields.items():
        kinds = field.types
        if kinds == ("boolean",):
            if f"present:{name}" in form:
                values[name] = name in form and form[name] in ("on", "true", "1")
            continue
        raw = form.get(name)
        if raw is None or raw.strip() == "":
            continue
        if kinds[0] in ("array", "object"):
            try:
                values[name] = json.loads(raw)
            except ValueError:
                raise ValidationError(
                    f'The field {name} must be JSON (for a list: ["a", "b"]); fix it and try again.'
                ) from None
        elif kinds[0] == "integer" and len(kinds) == 1:
            values[name] = _number(name, raw, int)
        elif kinds[0] == "number" and len(kinds) == 1:
            values[name] = _number(name, raw, float)
        elif field.enum and all(isinstance(choice, (int, float)) for choice in field.enum):
            values[name] = _number(name, raw, float if any(isinstance(c, float) for c in field.enum) else int)
        else:
            values[name] = raw
    return values


def _number(name: str, raw: str, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(raw)
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise ValidationError(f"The field {name} must be {noun}; {raw!r} is not.") from None
