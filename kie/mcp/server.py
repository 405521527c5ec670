"""`kie mcp`: kie's catalogue, ledger and budget as one small MCP tool set on the official SDK.

Eleven tools, no per-model tools: the catalogue is searched and each model's schema fetched on
demand. The two spending tools (`generate`, `compare_models`) take their consent from a resolver,
never from an argument: the resolver prices the jobs, applies the human's hard limits, and above the
auto-approve threshold asks the human through elicitation. A client that cannot ask gets a quote
that a person approves in a terminal with `kie mcp approve QUOTE`.
"""

from __future__ import annotations

import contextlib
import json
import mimetypes
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import (
    AcceptedElicitation,
    Context,
    Elicit,
    ElicitationResult,
    MCPServer,
    Resolve,
)
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.server.subscriptions import InMemorySubscriptionBus, ResourceUpdated
from mcp_types import CallToolResult, ContentBlock, ResourceLink, TextContent, ToolAnnotations
from pydantic import Field

from kie import catalog
from kie.errors import KieError
from kie.mcp import consent, tools
from kie.mcp import jobs as joblog
from kie.mcp.app import MAX_WAIT, SUBMIT_WAIT, KieApp
from kie.mcp.consent import Confirm, Plan
from kie.mcp.models import (
    Balance,
    Estimate,
    GalleryLink,
    GenerateOut,
    JobCost,
    JobIn,
    JobOut,
    JobsOut,
    ModelCard,
    ModelDetail,
    Quote,
    Recommendation,
    Upload,
    WaitOut,
)
from kie.store import DONE, RUNNING, SUCCEEDED

Ctx = Context[Any, Any]
# Declared on every spending tool, so a host can show that a call costs money before making it.
COST_META = {"cost": {"spends": True, "unit": "credits", "provider": "kie", "priced_by": "estimate_cost"}}
READ = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
READ_REMOTE = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=True)
SPEND = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)

INSTRUCTIONS = (
    "kie runs Kie.ai models. Find a model with search_models or recommend_model, read its fields with "
    "get_model, price jobs with estimate_cost, then generate. Every job is kept in a ledger and its files "
    "are saved to disk with a sha256, even after a timeout: never resend a generate after a timeout; call "
    "wait_for_jobs or get_jobs with the job ids instead, and pass an idempotency_key so a retried "
    "generate never pays twice. Spends above a small amount need the approval of the person running kie."
)

Media = Literal["image", "video", "audio", "text"]
State = Literal[
    "pending", "submitting", "running", "succeeded", "done", "failed", "rejected", "unknown", "abandoned"
]


def _app(ctx: Ctx) -> KieApp:
    app = ctx.request_context.lifespan_context
    assert isinstance(app, KieApp)
    return app


def _tool_error(exc: KieError) -> ToolError:
    return ToolError(str(exc))


# -- the consent gate (resolvers: the model never sees or fills these parameters) -----------------
class _Gate:
    """A decision the resolver reached without asking anyone."""

    def __init__(self, kind: Literal["none", "auto", "approved", "quote", "refused"]) -> None:
        self.kind = kind


def _plan(app: KieApp, job_list: list[JobIn], key: str | None) -> Plan:
    try:
        planned = consent.plan_jobs(job_list, app.settings)
        plan = consent.make_plan(planned, key, app.ledger)
    except KieError as exc:
        raise _tool_error(exc) from None
    if not plan.existing:
        plan.refusal = consent.refusal(plan, app.limits, app.spend_view())
    return plan


def plan_generate(ctx: Ctx, jobs: list[JobIn], idempotency_key: str | None) -> Plan:
    return _plan(_app(ctx), jobs, idempotency_key)


def plan_compare(
    ctx: Ctx,
    prompts: list[str],
    models: list[str],
    shared_input: dict[str, Any] | None,
    idempotency_key: str | None,
) -> Plan:
    return _plan(_app(ctx), compare_jobs(prompts, models, shared_input), idempotency_key)


def compare_jobs(prompts: list[str], models: list[str], shared: dict[str, Any] | None) -> list[JobIn]:
    if len(prompts) * len(models) > 16:
        raise ToolError(
            f"compare_models makes one job per prompt and model, at most 16; {len(prompts)} prompts × "
            f"{len(models)} models is {len(prompts) * len(models)}: drop some."
        )
    return [
        JobIn(
            model=model,
            input={**(shared or {}), "prompt": prompt},
            label=f"p{p + 1}-{model.rsplit('/', 1)[-1]}",
        )
        for p, prompt in enumerate(prompts)
        for model in models
    ]


def _decide(ctx: Ctx, plan: Plan) -> _Gate | Elicit[Confirm]:
    app = _app(ctx)
    if plan.existing:
        return _Gate("none")
    if plan.refusal is not None:
        return _Gate("refused")
    if (plan.total or 0.0) <= app.limits.auto_approve_credits + 1e-9:
        return _Gate("auto")
    if consent.approved_quote(app.ledger, plan.request_hash) is not None:
        return _Gate("approved")
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities is not None else None
    if elicitation is None or (elicitation.form is None and elicitation.url is not None):
        return _Gate("quote")
    return Elicit(consent.question(plan, app.settings.usd_per_credit), Confirm)


def consent_generate(ctx: Ctx, plan: Annotated[Plan, Resolve(plan_generate)]) -> _Gate | Elicit[Confirm]:
    return _decide(ctx, plan)


def consent_compare(ctx: Ctx, plan: Annotated[Plan, Resolve(plan_compare)]) -> _Gate | Elicit[Confirm]:
    return _decide(ctx, plan)


# -- results ----------------------------------------------------------------------------------------
def _links(job_list: list[JobOut]) -> list[ContentBlock]:
    return [
        ResourceLink(
            uri=f.uri,
            name=Path(f.path).name,
            mime_type=f.mime or mimetypes.guess_type(f.path)[0] or "application/octet-stream",
            size=f.size,
            description=f"{job.model} · job {job.job_id}",
        )
        for job in job_list
        for f in job.files
    ]


def _result(
    out: GenerateOut | WaitOut | JobsOut, *, cost: dict[str, Any] | None = None, error: bool = False
) -> CallToolResult:
    data = out.model_dump(mode="json")
    job_list = list(getattr(out, "jobs", []))
    content: list[ContentBlock] = [TextContent(type="text", text=json.dumps(data))]
    content += _links(job_list)
    meta = {"cost": cost} if cost is not None else None
    return CallToolResult(content=content, structured_content=data, is_error=error, _meta=meta)


def _cost(app: KieApp, plan: Plan) -> dict[str, Any]:
    credits = plan.total or 0.0
    return {
        "credits": credits,
        "usd": round(credits * app.settings.usd_per_credit, 6),
        "model": ",".join(sorted({j.model for j in plan.jobs})),
        "provider": "kie",
    }


async def _spend(
    ctx: Ctx, plan: Plan, outcome: ElicitationResult[Any], wait_seconds: int | None
) -> CallToolResult:
    app = _app(ctx)
    if plan.refusal is not None and not plan.existing:
        return _result(GenerateOut(status="refused", message=plan.refusal), error=True)
    if not isinstance(outcome, AcceptedElicitation):
        return _result(
            GenerateOut(
                status="declined",
                message=f"The person running kie declined spending {plan.total or 0:g} credits; nothing was "
                "submitted or paid.",
                credits_estimated=plan.total,
            )
        )
    decision = outcome.data
    if isinstance(decision, Confirm) and not decision.approve:
        return _result(
            GenerateOut(
                status="declined",
                message="The person running kie did not approve this spend; nothing was submitted or paid.",
                credits_estimated=plan.total,
            )
        )
    kind = decision.kind if isinstance(decision, _Gate) else "asked"
    if kind == "approved" and not consent.take_approved(app.ledger, plan.request_hash):
        kind = "quote"  # the approval was used by another call meanwhile
    if kind == "quote":
        quote = consent.open_quote(app.ledger, plan, app.limits.quote_ttl)
        command = f"kie mcp approve {quote['id']}" + (" --sandbox" if app.sandbox else "")
        return _result(
            GenerateOut(
                status="confirmation_required",
                message=(
                    f"Spending {plan.total or 0:g} credits needs the approval of the person running kie: ask "
                    f"them to run `{command}` in a terminal, then send this same call again. Nothing was "
                    "submitted or paid."
                ),
                credits_estimated=plan.total,
                quote=Quote(
                    quote_id=quote["id"],
                    credits=quote["credits"],
                    expires_at=quote["expires_at"],
                    approve_command=command,
                ),
            )
        )
    if not plan.existing:
        app.record_intent(plan)
    return await _answer(ctx, plan, wait_seconds)


async def _answer(ctx: Ctx, plan: Plan, wait_seconds: int | None) -> CallToolResult:
    """Wait for the creates to be answered, then (for images and audio by default) for the results,
    with progress; whatever is unfinished comes back as pending job ids."""
    app = _app(ctx)
    ids = [job["id"] for job in joblog.find_jobs(app.ledger, batch_id=plan.batch_id, limit=16)]
    if wait_seconds is None:
        wait = 0.0 if "video" in plan.media else app.auto_wait
    else:
        wait = float(min(wait_seconds, MAX_WAIT))
    progress = _reporter(ctx, max(wait, SUBMIT_WAIT))
    past_submit = (*joblog.SETTLED, RUNNING, SUCCEEDED)
    await app.engine.wait(ids, SUBMIT_WAIT, until=past_submit)
    await app.engine.wait(ids, wait, progress=progress, heartbeat=app.heartbeat)
    views = joblog.views(app.ledger, joblog.find_jobs(app.ledger, ids=ids))
    pending = [v.job_id for v in views if v.state not in joblog.SETTLED]
    done = sum(1 for v in views if v.state == DONE)
    if pending:
        message = (
            f"{len(views) - len(pending)} of {len(views)} finished; the rest keep running and downloading in "
            "the background: call wait_for_jobs with pending_job_ids (never generate again for them)."
        )
    else:
        message = f"All {len(views)} finished ({done} done); the files are on disk with their sha256."
    out = GenerateOut(
        status="pending" if pending else "done",
        message=message,
        batch_id=plan.batch_id,
        credits_estimated=plan.total,
        jobs=views,
        pending_job_ids=pending,
        gallery_url=app.gallery_url(batch_id=plan.batch_id),
    )
    return _result(out, cost=_cost(app, plan))


def _reporter(ctx: Ctx, span: float) -> joblog.Progress:
    """Progress as seconds waited out of the wait's length (it only ever grows), with `k/n done`."""
    import time

    started = time.monotonic()
    last = -1.0

    async def report(done: int, total: int) -> None:
        nonlocal last
        elapsed = max(last + 0.001, round(time.monotonic() - started, 3))
        last = elapsed
        await ctx.report_progress(elapsed, max(span, elapsed), f"{done}/{total} done")

    return report


# -- the server --------------------------------------------------------------------------------------
def build_server(app: KieApp) -> MCPServer[KieApp]:
    """The MCP server over `app`; its lifespan runs the background job engine."""
    bus = InMemorySubscriptionBus()

    async def job_changed(job_id: str) -> None:
        await bus.publish(ResourceUpdated(uri=f"kie://jobs/{job_id}"))
        await bus.publish(ResourceUpdated(uri="kie://budget"))

    app.engine.on_change = job_changed

    @contextlib.asynccontextmanager
    async def lifespan(_: MCPServer[KieApp]) -> AsyncIterator[KieApp]:
        async with app.running():
            yield app

    server: MCPServer[KieApp] = MCPServer(
        "kie",
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        subscriptions=bus,
        version=_version(),
        log_level="WARNING",
    )
    _register_tools(server, app)
    _compact_tools(server)
    _register_resources(server, app)
    _register_prompts(server)
    return server


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kie")
    except PackageNotFoundError:
        return "0"


def _register_tools(server: MCPServer[KieApp], app: KieApp) -> None:
    settings = app.settings

    @server.tool(annotations=READ)
    def search_models(
        query: str | None = None,
        media: Media | None = None,
        capability: str | None = Field(None, description="e.g. text-to-image, image-to-video, tts"),
        max_price: float | None = Field(None, description="Credits per job at default inputs"),
        limit: int = Field(10, ge=1, le=50),
    ) -> list[ModelCard]:
        """Find models by words (use case, name), media, capability and price; cheapest first."""
        try:
            return tools.search(
                settings, query=query, media=media, capability=capability, max_price=max_price, limit=limit
            )
        except KieError as exc:
            raise _tool_error(exc) from None

    @server.tool(annotations=READ)
    def get_model(model: str) -> ModelDetail:
        """One model's input fields (types, enums, limits, defaults) and price rule."""
        try:
            return tools.detail(catalog.get(model), settings)
        except KieError as exc:
            raise _tool_error(exc) from None

    @server.tool(annotations=READ)
    def recommend_model(
        use_case: str = Field(description=f"One of: {', '.join(tools.use_cases())}"),
        media: Media | None = None,
        max_price: float | None = None,
    ) -> Recommendation:
        """A model for a use case, cheaper and better alternatives, and the escalation ladder."""
        try:
            return tools.recommend(settings, use_case, media, max_price)
        except KieError as exc:
            raise _tool_error(exc) from None

    @server.tool(annotations=READ)
    def estimate_cost(jobs: Annotated[list[JobIn], Field(min_length=1, max_length=16)]) -> Estimate:
        """Price jobs locally (nothing is sent) and show the budget and whether approval is needed."""
        try:
            planned = consent.plan_jobs(jobs, settings)
        except KieError as exc:
            raise _tool_error(exc) from None
        plan = consent.make_plan(planned, None, app.ledger)
        view = app.spend_view()
        total = plan.total
        return Estimate(
            jobs=[JobCost(model=j.model, credits=j.credits, basis=j.basis) for j in planned],
            total_credits=total,
            total_usd=None if total is None else round(total * settings.usd_per_credit, 6),
            unknown_prices=plan.unknown,
            needs_approval=total is None or total > app.limits.auto_approve_credits,
            refused=consent.refusal(plan, app.limits, view),
            budget=app.budget(view),
        )

    @server.tool(annotations=SPEND, meta=COST_META)
    async def generate(
        ctx: Ctx,
        jobs: Annotated[list[JobIn], Field(min_length=1, max_length=16)],
        plan: Annotated[Plan, Resolve(plan_generate)],
        outcome: Annotated[ElicitationResult[Confirm], Resolve(consent_generate)],
        idempotency_key: str | None = Field(
            None, max_length=200, description="Same key: same jobs, never paid twice"
        ),
        wait_seconds: int | None = Field(
            None, ge=0, le=50, description="Default: 40 for images/audio, 0 for video"
        ),
    ) -> Annotated[CallToolResult, GenerateOut]:
        """Run 1-16 jobs: validated, priced, approved, recorded, submitted; files saved to disk."""
        return await _spend(ctx, plan, outcome, wait_seconds)

    @server.tool(annotations=SPEND, meta=COST_META)
    async def compare_models(
        ctx: Ctx,
        prompts: Annotated[list[str], Field(min_length=1, max_length=16)],
        models: Annotated[list[str], Field(min_length=1, max_length=16)],
        plan: Annotated[Plan, Resolve(plan_compare)],
        outcome: Annotated[ElicitationResult[Confirm], Resolve(consent_compare)],
        shared_input: dict[str, Any] | None = None,
        idempotency_key: str | None = Field(None, max_length=200),
        wait_seconds: int | None = Field(None, ge=0, le=50),
    ) -> Annotated[CallToolResult, GenerateOut]:
        """A prompt × model matrix (at most 16 jobs) as one batch, through the same approval."""
        return await _spend(ctx, plan, outcome, wait_seconds)

    @server.tool(annotations=READ)
    async def wait_for_jobs(
        ctx: Ctx,
        job_ids: Annotated[list[str], Field(min_length=1, max_length=32)],
        timeout_s: float = Field(40, ge=0, le=MAX_WAIT),
    ) -> Annotated[CallToolResult, WaitOut]:
        """Wait (bounded, with progress) for jobs to finish; never resubmits, never cancels."""
        found = await app.engine.wait(
            job_ids, timeout_s, progress=_reporter(ctx, timeout_s), heartbeat=app.heartbeat
        )
        known = {job["id"] for job in found}
        missing = [job_id for job_id in job_ids if job_id not in known]
        if missing:
            raise ToolError(f"No job {missing[0]} in the ledger; use the job_id values generate returned.")
        views = joblog.views(app.ledger, joblog.find_jobs(app.ledger, ids=job_ids, limit=len(job_ids)))
        running = [v.job_id for v in views if v.state not in joblog.SETTLED]
        message = (
            f"{len(running)} still running in the background; call wait_for_jobs again later."
            if running
            else "All finished."
        )
        return _result(WaitOut(jobs=views, still_running=running, message=message))

    @server.tool(annotations=READ)
    def get_jobs(
        job_ids: list[str] | None = None,
        batch_id: str | None = None,
        state: State | None = None,
        model: str | None = None,
        query: str | None = Field(None, description="Text in the prompt"),
        limit: int = Field(20, ge=1, le=100),
    ) -> Annotated[CallToolResult, JobsOut]:
        """Jobs from the ledger with their files (paths, sha256), credits and timings; newest first."""
        found = joblog.find_jobs(
            app.ledger, ids=job_ids, batch_id=batch_id, state=state, model=model, query=query, limit=limit
        )
        return _result(JobsOut(jobs=joblog.views(app.ledger, found)))

    @server.tool(
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True)
    )
    async def upload_file(path: str) -> Upload:
        """Upload a local image, video or audio file for use as a model input (returns its URL)."""
        return await _upload(app, path)

    @server.tool(annotations=READ_REMOTE)
    async def get_balance() -> Balance:
        """The Kie credit balance and the local budget: limits, spent today and this session."""
        balance = None
        if app.engine.client is not None:
            with contextlib.suppress(KieError):
                balance = await app.engine.client.credits()
        return Balance(credits=balance, budget=app.budget())

    @server.tool(annotations=READ)
    def open_gallery(job_id: str | None = None, batch_id: str | None = None) -> GalleryLink:
        """The local gallery's URL for a job or a batch (the gallery runs with `kie gallery`)."""
        url = app.gallery_url(batch_id=batch_id, job_id=job_id)
        running = _listening(app.limits.gallery_port)
        note = (
            "The gallery is running: open the URL in a browser."
            if running
            else "The gallery is not running: the person using kie starts it with `kie gallery`, then "
            "opens the URL."
        )
        return GalleryLink(url=url, note=note)


async def _upload(app: KieApp, raw: str) -> Upload:
    if app.transport != "stdio":
        raise ToolError(
            "upload_file reads local files only when kie mcp runs over stdio; pass a URL instead."
        )
    roots = [root.resolve() for root in app.limits.upload_roots]
    if not roots:
        raise ToolError(
            "Uploading local files is off: the person running kie allows folders with KIE_MCP_UPLOAD_ROOTS "
            "(comma-separated); until then, pass public URLs as inputs."
        )
    path = Path(raw).expanduser().resolve()
    if not any(path.is_relative_to(root) for root in roots):
        raise ToolError(
            f"{raw} is outside the folders allowed for upload ({', '.join(map(str, roots))}); move it into "
            "one of them."
        )
    if not path.is_file():
        raise ToolError(f"{raw} is not a file; give the path of an image, video or audio file.")
    kind = (mimetypes.guess_type(path.name)[0] or "").split("/")[0]
    if kind not in ("image", "video", "audio"):
        raise ToolError(f"{raw} is not an image, video or audio file; only media can be uploaded.")
    client = app.engine.client
    if client is None:
        raise ToolError("The server is not running yet; try again in a moment.")
    try:
        uploaded = await client.upload(path)
    except KieError as exc:
        raise _tool_error(exc) from None
    return Upload(url=uploaded.download_url, expires="about 3 days after upload")


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _register_resources(server: MCPServer[KieApp], app: KieApp) -> None:
    settings = app.settings

    @server.resource(
        "kie://models", mime_type="application/json", description="Every model with its default price"
    )
    def model_index() -> str:
        return tools.index_json(settings)

    @server.resource("kie://models/{+model_id}", mime_type="application/json", description="One model")
    def model_resource(model_id: str) -> str:
        try:
            return tools.detail(catalog.get(model_id), settings).model_dump_json(indent=1)
        except KieError as exc:
            raise ResourceError(str(exc)) from None

    @server.resource("kie://guides/model-selection", mime_type="text/markdown")
    def selection_guide() -> str:
        return tools.selection_guide()

    @server.resource("kie://guides/pricing", mime_type="text/markdown")
    def pricing_guide() -> str:
        return tools.pricing_guide(settings)

    @server.resource("kie://budget", mime_type="application/json", description="Limits and spend, live")
    def budget() -> str:
        return app.budget().model_dump_json(indent=1)

    @server.resource("kie://jobs/{job_id}", mime_type="application/json", description="One job, live")
    def job_resource(job_id: str) -> str:
        found = joblog.find_jobs(app.ledger, ids=[job_id], limit=1)
        if not found:
            raise ResourceError(f"No job {job_id} in the ledger.")
        return joblog.views(app.ledger, found)[0].model_dump_json(indent=1)

    @server.resource(
        "kie://files/{sha256}", mime_type="application/octet-stream", description="A saved result"
    )
    def file_resource(sha256: str) -> bytes:
        row = joblog.file_by_sha(app.ledger, sha256)
        if row is None:
            raise ResourceError(f"No saved file has sha256 {sha256}.")
        try:
            return Path(row["path"]).read_bytes()
        except OSError as exc:
            raise ResourceError(f"The file {row['path']} can no longer be read ({exc.strerror}).") from None


def _register_prompts(server: MCPServer[KieApp]) -> None:
    @server.prompt(name="compare-models-for")
    def compare_for(brief: str) -> str:
        """A template: compare a few models on one brief."""
        return (
            f"Brief: {brief}\n\nPick two to four models that suit this brief (search_models, "
            "recommend_model), price them with estimate_cost, and if the total is acceptable run "
            "compare_models with the brief as the prompt. Show the files side by side, with the "
            "gallery link."
        )

    @server.prompt(name="make-image-for")
    def make_image(brief: str, budget: str = "20") -> str:
        """A template: one image for a brief within a budget in credits."""
        return (
            f"Brief: {brief}\nBudget: {budget} credits.\n\nChoose an image model within the budget "
            "(recommend_model with max_price), write a clear prompt from the brief, check the price with "
            "estimate_cost, then generate with an idempotency_key. Report the file path."
        )

    @server.prompt(name="storyboard-video")
    def storyboard(brief: str) -> str:
        """A template: a short storyboard, then one video per shot."""
        return (
            f"Brief: {brief}\n\nWrite a storyboard of three to five shots. For each shot, propose a video "
            "prompt, choose a video model (recommend_model with media=video) and price all shots with "
            "estimate_cost. Generate only after the total is agreed; videos return pending job ids, so "
            "follow them with wait_for_jobs."
        )


def compact_schema(schema: Any) -> Any:
    """The same JSON Schema in fewer tokens: no generated titles, `T | None` as a type list, no null
    defaults. The tool list is read into the agent's context on every turn."""
    if isinstance(schema, list):
        return [compact_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "default" and value is None:
            continue
        if key in ("properties", "$defs"):
            out[key] = {name: compact_schema(sub) for name, sub in value.items()}
        else:
            out[key] = compact_schema(value)
    options = out.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        other = next(o for o in options if o != {"type": "null"})
        if isinstance(other, dict) and isinstance(other.get("type"), str):
            del out["anyOf"]
            out.update(other)
            out["type"] = [other["type"], "null"]
            if "enum" in other:
                out["enum"] = [*other["enum"], None]
    return out


def _unrequired(schema: Any) -> Any:
    """An output schema without `required` lists: every field is always present in kie's answers."""
    if isinstance(schema, list):
        return [_unrequired(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    return {
        key: (
            {n: _unrequired(s) for n, s in value.items()}
            if key in ("properties", "$defs")
            else _unrequired(value)
        )
        for key, value in schema.items()
        if key != "required"
    }


def _compact_tools(server: MCPServer[KieApp]) -> None:
    # The SDK keeps each tool's schemas as plain dicts; they are rewritten once, before any listing.
    for tool in server._tool_manager.list_tools():
        tool.parameters.clear()
        tool.parameters.update(compact_schema(tool.fn_metadata.arg_model.model_json_schema(by_alias=True)))
        output = tool.fn_metadata.output_schema
        if output is not None:
            compacted = _unrequired(compact_schema(output))
            output.clear()
            output.update(compacted)
