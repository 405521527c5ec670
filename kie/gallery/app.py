"""The gallery's web app: Starlette routes over `Gallery` reads, Jinja2 pages, htmx fragments.

Everything is rendered on the server; htmx swaps fragments (the next page of cards, the detail panel,
a quote) and `gallery.js` adds what HTML cannot (the compare slider, shortcuts, copying). Files are
served by sha256 only: the client never names a path.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import shlex
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from kie.errors import BudgetExceededError, ConfigurationError, KieError, ValidationError
from kie.gallery.actions import KINDS, Actions, form_fields, parse_form
from kie.gallery.marks import marks_of, parse_tags, pick_winner, set_marks
from kie.gallery.queries import COUNT_CAP, PAGE, Card, Filters
from kie.gallery.security import Guard, GuardMiddleware
from kie.gallery.thumbs import WIDTHS, Thumbnailer, is_sha256, kind_of
from kie.store import IN_FLIGHT, PENDING, Ledger

HERE = Path(__file__).parent
API_BASE = "https://api.kie.ai"


@dataclass
class GalleryConfig:
    ledger: Ledger
    guard: Guard
    cache_dir: Path
    actions: Actions
    usd_per_credit: float = 0.005
    page_size: int = PAGE
    sandbox: bool = False


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(HERE / "templates")),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        credits=fmt_credits,
        usd=fmt_usd,
        when=fmt_when,
        seconds=fmt_seconds,
        size=fmt_size,
        short=lambda value: str(value or "")[:8],
        tojson_pretty=lambda value: json.dumps(value, indent=2, sort_keys=True, default=str),
    )
    return env


def fmt_credits(value: Any) -> str:
    if value is None:
        return "unknown"
    number = float(value)
    return f"{number:,.0f}" if number == int(number) else f"{number:,.2f}".rstrip("0").rstrip(".")


def fmt_usd(value: Any) -> str:
    return "unknown" if value is None else f"${float(value):,.2f}"


def fmt_when(value: Any) -> str:
    if value is None:
        return "—"
    return dt.datetime.fromtimestamp(float(value)).strftime("%Y-%m-%d %H:%M:%S")


def fmt_seconds(value: Any) -> str:
    if value is None:
        return "—"
    number = float(value)
    if number < 60:
        return f"{number:.1f} s"
    return f"{int(number // 60)} min {number % 60:.0f} s"


def fmt_size(value: Any) -> str:
    number = float(value or 0)
    for unit in ("B", "KB", "MB", "GB"):
        if number < 1024 or unit == "GB":
            return f"{number:.0f} {unit}" if unit == "B" else f"{number:.1f} {unit}"
        number /= 1024
    return f"{number:.1f} GB"


def copy_as(job: Mapping[str, Any]) -> dict[str, str]:
    """The job as a `kie generate` command, a Python snippet and a cURL call (with `$KIE_API_KEY`)."""
    from kie import catalog

    model = str(job["model"])
    values = dict(job.get("input") or {})
    parts = ["kie", "generate", shlex.quote(model)]
    for key, value in values.items():
        if key == "prompt" and isinstance(value, str):
            parts += ["--prompt", shlex.quote(value)]
        else:
            shown = value if isinstance(value, str) else json.dumps(value)
            parts += ["-i", shlex.quote(f"{key}={shown}")]
    arguments = ", ".join(f"{key}={value!r}" for key, value in values.items() if key.isidentifier())
    extra = {key: value for key, value in values.items() if not key.isidentifier()}
    if extra:
        arguments += (", " if arguments else "") + f"**{extra!r}"
    python = (
        "import kie\n\n"
        "with kie.Kie() as client:  # KIE_API_KEY from the environment\n"
        f'    gen = client.generate({model!r}{", " if arguments else ""}{arguments}, output_dir="out")\n'
        "    print(gen.paths)"
    )
    try:
        spec = catalog.get(model)
        path, fixed, market = spec.endpoint.create, dict(spec.endpoint.fixed), spec.endpoint.kind == "market"
    except KieError:
        path, fixed, market = "/api/v1/jobs/createTask", {}, True
    body = {"model": model, "input": values} if market else {**fixed, **values}
    curl = (
        f"curl -X POST {API_BASE}{path} \\\n"
        '  -H "Authorization: Bearer $KIE_API_KEY" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        f"  -d {shlex.quote(json.dumps(body))}"
    )
    return {"cli": " ".join(parts), "python": python, "curl": curl}


def bar_chart(rows: Sequence[Mapping[str, Any]], *, width: int = 640, bar: int = 22) -> dict[str, Any]:
    """Geometry for a horizontal bar chart of estimated vs charged credits, drawn as SVG by a template."""
    peak = max([float(row["estimated"]) for row in rows] + [float(row["charged"]) for row in rows] + [0.0])
    label = 170
    room = width - label - 90
    scale = room / peak if peak > 0 else 0.0
    bars = []
    for position, row in enumerate(rows[:40]):
        y = position * (bar + 8)
        bars.append(
            {
                "key": str(row["key"]),
                "y": y,
                "estimated": float(row["estimated"]),
                "charged": float(row["charged"]),
                "w_estimated": max(1.0, float(row["estimated"]) * scale) if row["estimated"] else 0.0,
                "w_charged": max(1.0, float(row["charged"]) * scale) if row["charged"] else 0.0,
            }
        )
    return {
        "width": width,
        "height": max(1, len(bars)) * (bar + 8) + 24,
        "label": label,
        "bar": bar,
        "bars": bars,
    }


def create_app(config: GalleryConfig) -> Starlette:
    ledger = config.ledger
    gallery = config.actions.gallery
    thumbs = Thumbnailer(config.cache_dir / "thumbs")
    env = _environment()

    def page(request: Request, name: str, context: Mapping[str, Any], status: int = 200) -> HTMLResponse:
        html = env.get_template(name).render(
            {
                "csrf": config.guard.csrf,
                "sandbox": config.sandbox,
                "request_path": request.url.path,
                "usd_per_credit": config.usd_per_credit,
                **context,
            }
        )
        return HTMLResponse(html, status_code=status, headers={"cache-control": "no-store"})

    def problem(request: Request, exc: KieError, status: int = 400) -> HTMLResponse:
        fragment = request.headers.get("hx-request") == "true"
        return page(request, "_problem.html" if fragment else "problem.html", {"message": str(exc)}, status)

    def info(card: Card) -> dict[str, Any]:
        """What a card shows of its first file: the media kind, and dimensions for images."""
        cover = card.cover
        if cover is None:
            return {"kind": None}
        kind = kind_of(cover["content_type"], cover["path"])
        return {"kind": kind, "sha": cover["sha256"]}

    def media_of(item: Mapping[str, Any]) -> dict[str, Any]:
        facts = thumbs.info(item["sha256"], Path(item["path"]), item["content_type"])
        return {"kind": facts.kind, "width": facts.width, "height": facts.height, "duration": facts.duration}

    def filters_of(request: Request) -> Filters:
        return Filters.parse(request.query_params)

    async def grid(request: Request) -> Response:
        try:
            filters = filters_of(request)
            found = gallery.page(filters, None, config.page_size)
            total = gallery.count(filters)
        except ValidationError as exc:
            return problem(request, exc)
        return page(
            request,
            "grid.html",
            {
                "filters": filters,
                "page": found,
                "info": info,
                "total": total,
                "count_cap": COUNT_CAP,
                "choices": gallery.choices(),
                "states": _state_list(),
                "budget": config.actions.budget(),
            },
        )

    async def cards(request: Request) -> Response:
        try:
            filters = filters_of(request)
            found = gallery.page(filters, request.query_params.get("cursor"), config.page_size)
        except ValidationError as exc:
            return problem(request, exc)
        return page(request, "_cards.html", {"filters": filters, "page": found, "info": info})

    def detail_context(job_id: str) -> dict[str, Any] | None:
        found = gallery.detail(job_id)
        if found is None:
            return None
        job = found["job"]
        from kie import catalog

        try:
            spec = catalog.get(job["model"])
            model_info = {
                "family": spec.family,
                "name": spec.name,
                "docs": spec.docs_url,
                "media": spec.media,
            }
        except KieError:
            model_info = {"family": None, "name": job["model"], "docs": None, "media": None}
        charged = job["actual_credits"]
        estimated = job["estimated_credits"]
        return {
            **found,
            "model_info": model_info,
            "media": {item["sha256"]: media_of(item) for item in found["files"]},
            "copy": copy_as(job),
            "seed": (job["input"] or {}).get("seed"),
            "usd_estimated": None if estimated is None else estimated * config.usd_per_credit,
            "usd_charged": None if charged is None else charged * config.usd_per_credit,
            "live": job["state"] in (*IN_FLIGHT, PENDING),
            "marks": marks_of(ledger, job["id"]),
            "can_spend": config.actions.can_spend,
            "budget": config.actions.budget(),
        }

    async def job_detail(request: Request) -> Response:
        context = detail_context(request.path_params["job_id"])
        if context is None:
            return problem(
                request, ValidationError("No such job in this ledger; it may have been removed."), 404
            )
        if request.headers.get("hx-request") == "true":
            return page(request, "_panel.html", context)
        return page(request, "detail.html", context)

    async def marks_post(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        form = await request.form()
        action = str(form.get("action") or "")
        changes: dict[str, Any] = {}
        try:
            if action in ("star", "unstar"):
                changes["starred"] = action == "star"
            elif action in ("reject", "unreject"):
                changes["rejected"] = action == "reject"
            elif action in ("archive", "unarchive"):
                changes["archived"] = action == "archive"
            elif action == "tags":
                changes["tags"] = parse_tags(str(form.get("tags") or ""))
            else:
                raise ValidationError(
                    f"Unknown mark action {action!r}; use star, unstar, reject, unreject, archive, "
                    "unarchive or tags."
                )
            current = set_marks(ledger, job_id, **changes)
        except ValidationError as exc:
            return problem(request, exc)
        return page(request, "_marks.html", {"job": {"id": job_id}, "marks": current})

    async def edit_form(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        job = ledger.job(job_id)
        if job is None:
            return problem(request, ValidationError("No such job in this ledger."), 404)
        from kie import catalog

        try:
            spec = catalog.get(job["model"])
        except KieError as exc:
            return problem(request, exc)
        return page(
            request,
            "_edit.html",
            {"job": job, "spec": spec, "fields": form_fields(spec, job["input"] or {})},
        )

    async def _edited(request: Request, job_id: str) -> tuple[str, dict[str, Any] | None]:
        form = await request.form()
        kind = str(form.get("kind") or "rerun")
        if kind not in KINDS:
            raise ValidationError(f"Unknown action {kind!r}; use one of {', '.join(KINDS)}.")
        if kind != "edit":
            return kind, None
        raw = form.get("input_json")
        if isinstance(raw, str) and raw:
            try:
                loaded = json.loads(raw)
            except ValueError:
                raise ValidationError("The edited input is not JSON; open the edit form again.") from None
            if not isinstance(loaded, dict):
                raise ValidationError("The edited input must be an object; open the edit form again.")
            return kind, loaded
        job = ledger.job(job_id)
        if job is None:
            raise ValidationError("No such job in this ledger.")
        from kie import catalog

        spec = catalog.get(job["model"])
        return kind, parse_form(spec, {key: str(value) for key, value in form.multi_items()})

    async def quote(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        try:
            kind, edited = await _edited(request, job_id)
            offer = config.actions.quote(job_id, kind, edited)
        except KieError as exc:
            return problem(request, exc, 422)
        return page(
            request,
            "_quote.html",
            {"quote": offer, "input_json": json.dumps(offer.input, sort_keys=True)},
            200 if offer.allowed else 409,
        )

    async def rerun(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        try:
            kind, edited = await _edited(request, job_id)
            new_id = await config.actions.start(job_id, kind, edited)
        except BudgetExceededError as exc:
            return problem(request, exc, 409)
        except ConfigurationError as exc:
            return problem(request, exc, 403)
        except KieError as exc:
            return problem(request, exc, 422)
        context = detail_context(new_id)
        return page(request, "_started.html", {"new_id": new_id, **(context or {})}, 201)

    async def compare(request: Request) -> Response:
        a, b = request.query_params.get("a", ""), request.query_params.get("b", "")
        found = gallery.cards([a, b])
        if a not in found or b not in found:
            return problem(
                request, ValidationError("Compare needs two job ids, ?a=…&b=…, both in this ledger."), 404
            )
        return page(request, "compare.html", {"a": found[a], "b": found[b], "info": info})

    def matrix_context(batch_id: str) -> dict[str, Any] | None:
        return gallery.matrix(batch_id)

    async def matrix(request: Request) -> Response:
        context = matrix_context(request.path_params["batch_id"])
        if context is None:
            return problem(request, ValidationError("No such batch in this ledger."), 404)
        return page(request, "matrix.html", {**context, "info": info})

    async def winner(request: Request) -> Response:
        batch_id = request.path_params["batch_id"]
        form = await request.form()
        job_id = str(form.get("job") or "")
        context = matrix_context(batch_id)
        if context is None:
            return problem(request, ValidationError("No such batch in this ledger."), 404)
        row = next(
            (
                cells
                for cells in context["grid"].values()
                if any(c.job["id"] == job_id for c in cells.values())
            ),
            None,
        )
        if row is None:
            return problem(request, ValidationError(f"Job {job_id!r} is not a cell of this matrix."))
        pick_winner(ledger, job_id, [card.job["id"] for card in row.values()])
        context = matrix_context(batch_id)
        return page(request, "_matrix.html", {**(context or {}), "info": info})

    async def spend(request: Request) -> Response:
        try:
            since = Filters.parse({"since": request.query_params.get("since", "")}).since
        except ValidationError as exc:
            return problem(request, exc)
        data = gallery.spend(since)
        charts = {kind: bar_chart(rows) for kind, rows in data.items()}
        totals = {
            "estimated": sum(float(row["estimated"]) for row in data["day"]),
            "charged": sum(float(row["charged"]) for row in data["day"]),
            "jobs": sum(int(row["jobs"]) for row in data["day"]),
        }
        return page(request, "spend.html", {"data": data, "charts": charts, "totals": totals, "since": since})

    async def spend_csv(request: Request) -> Response:
        data = gallery.spend(None)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["by", "key", "jobs", "estimated_credits", "charged_credits", "usd", "balance_drop"])
        for kind in ("day", "model", "batch"):
            for row in data[kind]:
                writer.writerow(
                    [
                        kind,
                        row["key"],
                        row["jobs"],
                        f"{float(row['estimated']):g}",
                        f"{float(row['charged']):g}",
                        f"{float(row['cost']) * config.usd_per_credit:.4f}",
                        "" if row.get("balance_drop") is None else f"{float(row['balance_drop']):g}",
                    ]
                )
        return Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": 'attachment; filename="kie-spend.csv"'},
        )

    def _file_or_none(sha: str) -> tuple[Path, Mapping[str, Any]] | None:
        if not is_sha256(sha):
            return None
        row = gallery.file_by_sha(sha)
        if row is None:
            return None
        path = Path(row["path"])
        try:
            if path.stat().st_size != row["size"]:
                return None
        except OSError:
            return None
        return path, row

    async def file(request: Request) -> Response:
        sha = request.path_params["sha"]
        found = _file_or_none(sha)
        if found is None:
            return Response("No such file here (unknown, moved or changed since it was saved).", 404)
        path, row = found
        if request.headers.get("if-none-match") == f'"{sha}"':
            return Response(status_code=304, headers={"etag": f'"{sha}"'})
        return FileResponse(
            path,
            media_type=row["content_type"] or None,
            headers={"etag": f'"{sha}"', "cache-control": "private, max-age=31536000, immutable"},
        )

    async def thumb(request: Request) -> Response:
        sha = request.path_params["sha"]
        try:
            width = int(request.path_params["width"])
        except ValueError:
            width = 0
        if width not in WIDTHS:
            return Response(f"Thumbnail widths are {', '.join(map(str, WIDTHS))}.", 404)
        found = _file_or_none(sha)
        if found is None:
            return Response("No such file here.", 404)
        made = thumbs.thumbnail(sha, found[0], width)
        if made is None:
            return RedirectResponse(f"/files/{sha}", 302)
        return FileResponse(
            made,
            media_type="image/webp",
            headers={"etag": f'"{sha}-{width}"', "cache-control": "private, max-age=31536000, immutable"},
        )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await config.actions.close()

    routes = [
        Route("/", grid),
        Route("/cards", cards),
        Route("/jobs/{job_id:str}", job_detail),
        Route("/jobs/{job_id:str}/marks", marks_post, methods=["POST"]),
        Route("/jobs/{job_id:str}/edit", edit_form),
        Route("/jobs/{job_id:str}/quote", quote, methods=["POST"]),
        Route("/jobs/{job_id:str}/rerun", rerun, methods=["POST"]),
        Route("/compare", compare),
        Route("/batches/{batch_id:str}/matrix", matrix),
        Route("/batches/{batch_id:str}/winner", winner, methods=["POST"]),
        Route("/spend", spend),
        Route("/spend.csv", spend_csv),
        Route("/files/{sha:str}", file),
        Route("/thumbs/{sha:str}/{width:str}.webp", thumb),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.thumbs = thumbs
    app.state.config = config
    app.add_middleware(GuardMiddleware, guard=config.guard)
    return app


def _state_list() -> list[str]:
    from kie.store import STATES

    return list(STATES)
