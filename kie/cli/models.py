"""`kie models`, `kie models show`, `kie cost` and `kie recommend`: the catalogue from the terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from kie.cli._common import console, emit_table, fail, fmt_credits, is_pipe, print_json
from kie.config import load_settings
from kie.errors import KieError

if TYPE_CHECKING:
    from kie.catalog.pricing import Estimate
    from kie.catalog.spec import FieldSpec, ModelSpec, PriceRule

models_app = typer.Typer(help="List and inspect every model Kie.ai sells.", no_args_is_help=False)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def price_text(rule: PriceRule | None) -> str:
    if rule is None:
        return "unknown"
    if rule.table is not None:
        values = sorted(set(rule.table.values()))
        base = (
            fmt_credits(values[0])
            if len(values) == 1
            else f"{fmt_credits(values[0])}–{fmt_credits(values[-1])}"
        )
    else:
        base = fmt_credits(rule.credits)
    suffix = {"task": "", "second": "/s", "output": "/output", "input-second": "/s of input"}[rule.per]
    return base + suffix


def model_summary(spec: ModelSpec) -> dict[str, Any]:
    return {
        "id": spec.id,
        "name": spec.name,
        "family": spec.family,
        "kind": spec.media,
        "capabilities": list(spec.capabilities),
        "price": price_text(spec.price),
        "speed": spec.traits.speed,
        "quality": spec.traits.quality,
        "status": spec.status,
        "endpoint": spec.endpoint.create,
        **({"replacement": spec.replacement} if spec.replacement else {}),
    }


@models_app.callback(invoke_without_command=True)
def list_models(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option(help="image, video, audio or text.")] = None,
    capability: Annotated[str | None, typer.Option(help="e.g. text-to-image, upscale, tts.")] = None,
    family: Annotated[str | None, typer.Option(help="e.g. kling, seedream, suno.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include deprecated models.")] = False,
    json_: JsonOpt = False,
) -> None:
    """A table of models: id, kind, capabilities, price (credits), speed/quality tiers, status."""
    from kie import catalog

    if ctx.invoked_subcommand is not None:
        return
    kinds = ("image", "video", "audio", "text")
    if kind is not None and kind not in kinds:
        fail(f"--kind must be one of {', '.join(kinds)}, got {kind!r}.")
    statuses = None if all_ else ("active", "preview")
    found = catalog.search(kind=kind, capability=capability, family=family, status=statuses)
    if not found:
        fail("No model matches those filters; run `kie models --all` to see every model.", code=1)
    if json_:
        print_json([model_summary(s) for s in found])
        return
    pipe = is_pipe()
    emit_table(
        ("id", "kind", "capabilities", "credits", "speed", "quality", "status"),
        (
            (
                spec.id,
                spec.media,
                ", ".join(spec.capabilities),
                price_text(spec.price),
                spec.traits.speed if pipe else "⚡" * spec.traits.speed,
                spec.traits.quality if pipe else "★" * spec.traits.quality,
                spec.status,
            )
            for spec in found
        ),
        title=f"{len(found)} models",
    )


def _field_row(name: str, spec: FieldSpec) -> dict[str, Any]:
    allowed: str | None = None
    if spec.enum is not None:
        allowed = ", ".join(str(v) for v in spec.enum) + ("" if spec.enum_complete else ", … (examples)")
    elif spec.minimum is not None or spec.maximum is not None:
        low = "…" if spec.minimum is None else spec.minimum
        high = "…" if spec.maximum is None else spec.maximum
        allowed = f"{low} to {high}"
    limits = []
    if spec.max_length is not None:
        limits.append(f"≤{spec.max_length} chars")
    if spec.max_items is not None:
        limits.append(f"≤{spec.max_items} items")
    if spec.min_items is not None:
        limits.append(f"≥{spec.min_items} items")
    type_text = "|".join(spec.types) + (f"<{spec.items}>" if spec.items else "")
    return {
        "field": name,
        "type": type_text,
        "required": spec.required,
        "default": spec.default,
        "allowed": allowed,
        "limits": ", ".join(limits) or None,
        "upload": spec.media,
        "note": spec.note,
    }


@models_app.command("show")
def show_model(
    model: Annotated[str, typer.Argument(help="Model id, alias or a common name.")],
    sources: Annotated[
        bool, typer.Option("--sources", help="Also show where each price and schema fact comes from.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Every field of a model with type, default and allowed values, plus aliases and price rule."""
    from kie import catalog

    try:
        resolved = catalog.resolve(model)
    except KieError as exc:
        fail(str(exc))
    spec = resolved.model
    aliases = sorted(name for name, a in catalog.aliases().items() if a.target == spec.id)
    fields = [_field_row(n, f) for n, f in spec.fields.items()]
    if json_:
        print_json(
            {
                **model_summary(spec),
                "vendor": spec.vendor,
                "docs_url": spec.docs_url,
                "endpoint": spec.endpoint.model_dump(),
                "fields": fields,
                "schema_published": spec.schema_published,
                "price_rule": _rule_json(spec.price, sources),
                "traits": spec.traits.model_dump(),
                "aliases": aliases,
                "form_of": spec.form_of,
                "notes": list(spec.notes),
                **({"sources": _sources(resolved, spec)} if sources else {}),
            }
        )
        return
    if resolved.alias is not None:
        console.print(f"[dim]{model!r} is an alias of {spec.id}.[/] {resolved.alias.note or ''}")
    console.print(f"[bold]{spec.name}[/]  ({spec.id})  {spec.status}")
    if spec.status == "deprecated":
        instead = f"; use {spec.replacement} instead" if spec.replacement else ""
        console.print(f"[yellow]Deprecated at Kie{instead}.[/] It stays callable while Kie serves it.")
    if spec.form_of:
        console.print(
            f"The createTask form of {spec.form_of}: the same follow-ups and price, "
            "on POST /api/v1/jobs/createTask."
        )
    console.print(
        f"{spec.media} · {', '.join(spec.capabilities)} · vendor {spec.vendor or '?'}"
        f" · docs {spec.docs_url or '—'}"
    )
    endpoint = spec.endpoint
    console.print(f"endpoint: POST {endpoint.create}  ·  status: {endpoint.status}")
    if spec.schema_published:
        emit_table(
            ("field", "type", "req", "default", "allowed values", "limits", "upload"),
            (
                (
                    row["field"],
                    row["type"],
                    "yes" if row["required"] else "",
                    "" if row["default"] is None else str(row["default"]),
                    row["allowed"] or "",
                    row["limits"] or "",
                    row["upload"] or "",
                )
                for row in fields
            ),
        )
    else:
        console.print(
            "[yellow]Kie publishes no input schema for this model: inputs are passed through unchecked.[/]"
        )
    rule = spec.price
    if rule is None:
        console.print("price: unknown (no published price; set one in your config's \\[prices] table)")
    else:
        how = f"by {', '.join(rule.by)}" if rule.by else "flat"
        per = {
            "task": "per task",
            "second": f"per second of `{rule.units_field or 'the output'}`",
            "output": f"per output (`{rule.units_field or 'default count'}`)",
            "input-second": "per second of the input media (unknown until submitted)",
        }[rule.per]
        source = f" — source: {rule.source}" if sources and rule.source else ""
        console.print(f"price: {price_text(rule)} credits, {how}, {per}{source}")
        if rule.table:
            console.print("  " + "; ".join(f"{k}: {fmt_credits(v)}" for k, v in rule.table.items()))
        if rule.offer is not None:
            console.print("  " + _offer_text(rule))
    t = spec.traits
    console.print(
        f"speed {t.speed}/5 (~{int(t.typical_seconds)} s) · quality {t.quality}/5"
        f" · best for {', '.join(t.best_for) or '—'} · languages {', '.join(t.languages)}"
    )
    if aliases:
        console.print("aliases: " + ", ".join(aliases))
    for note in spec.notes:
        console.print(f"[dim]note:[/] {escape(note)}")
    if sources:
        for where, text in _sources(resolved, spec).items():
            console.print(f"[dim]source of {escape(where)}:[/] {escape(text)}")


def _offer_text(rule: PriceRule) -> str:
    from kie.catalog.pricing import offer_active

    offer = rule.offer
    assert offer is not None
    if offer.table is not None:
        shown = "; ".join(f"{k}: {fmt_credits(v)}" for k, v in offer.table.items())
    else:
        shown = fmt_credits(offer.credits)
    if offer_active(offer):
        return f"offer until {offer.ends}: {shown} (used until then)"
    return f"offer ended {offer.ends} ({shown}); the regular price is used"


def _sources(resolved: Any, spec: ModelSpec) -> dict[str, str]:
    """Where each fact comes from, for maintainers checking the catalogue (`--sources`)."""
    found: dict[str, str] = {}
    if resolved.alias is not None and resolved.alias.source:
        found["alias"] = resolved.alias.source
    for index, text in enumerate(spec.sources, start=1):
        found[f"note {index}"] = text
    for name, field in spec.fields.items():
        if field.source:
            found[f"field {name}"] = field.source
    if spec.price is not None and spec.price.source:
        found["price"] = spec.price.source
    if spec.price is not None and spec.price.offer is not None:
        found["offer"] = spec.price.offer.source
    if spec.source:
        found["schema"] = spec.source
    return found


def _rule_json(rule: PriceRule | None, sources: bool) -> dict[str, Any] | None:
    if rule is None:
        return None
    data = rule.model_dump()
    if not sources:
        data.pop("source", None)
    return data


def estimate_json(est: Estimate, usd_rate: float) -> dict[str, Any]:
    return {
        "model": est.model,
        "count": est.count,
        "credits_each": est.credits_each,
        "credits": est.credits,
        "usd": est.usd(usd_rate),
        "known": est.known,
        "basis": est.basis,
    }


@models_app.command("sync-prices")
def sync_prices(
    apply: Annotated[
        bool, typer.Option("--apply", help="Save prices that fill unknown catalogue prices.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Refresh prices from Kie's public pricing endpoint (needs the internet; fails cleanly offline)."""
    from kie.catalog import sync

    try:
        rows = sync.fetch()
    except KieError as exc:
        fail(str(exc), code=1)
    report = sync.reconcile(rows)
    settings = load_settings()
    saved = sync.save(settings.home, report.filled) if apply else None
    if json_:
        print_json(
            {
                "rows": len(rows),
                "filled": report.filled,
                "saved_to": str(saved) if saved else None,
                "unmatched": len(report.unmatched),
            }
        )
        return
    console.print(f"{len(rows)} price rows; {len(report.filled)} fill unknown catalogue prices.")
    for model_id, credits in sorted(report.filled.items()):
        console.print(f"  {model_id}: {fmt_credits(credits)} credits")
    if saved:
        console.print(f"Saved to {saved}; estimates now use them where the catalogue had no price.")
    elif report.filled:
        console.print("Run again with --apply to use them.")


_KIND_TITLES = {
    "new": "new at Kie, missing here",
    "gone": "here, and gone at Kie",
    "price": "price different",
    "offer": "offer with an end date, not recorded here",
    "expired-offer": "offer that has ended (its price is not used)",
    "schema": "input fields added or removed at Kie",
}
DRIFT = 3


@models_app.command("check")
def check_models(
    probe: Annotated[
        bool,
        typer.Option(
            "--probe",
            help="Also ask Kie whether each new or gone id exists (a createTask with an empty input; "
            "needs your key). Never sent without this flag.",
        ),
    ] = False,
    sandbox: Annotated[
        bool, typer.Option("--sandbox", help="Check against the built-in sandbox's copies of the sources.")
    ] = False,
    sources_url: Annotated[
        str | None,
        typer.Option(
            "--sources", help="Read all four sources from this host (a sandbox or a mirror).", metavar="URL"
        ),
    ] = None,
    model_paths: Annotated[
        str | None,
        typer.Option("--model-paths", help="URL of a model-path list (JSON) to compare fields with."),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Compare the catalogue with Kie's public sources; exit 3 when they differ (for CI)."""
    import contextlib

    import httpx

    from kie.catalog import drift
    from kie.cli.session import session

    with contextlib.ExitStack() as stack:
        settings = load_settings()
        base_url, api_key = settings.base_url, settings.api_key
        if sandbox:
            sess = stack.enter_context(session(True, quiet=json_, settings=settings))
            sources = drift.Sources.at(sess.settings.base_url)
            base_url, api_key = sess.settings.base_url, sess.settings.api_key
        elif sources_url:
            sources = drift.Sources.at(sources_url)
        else:
            sources = drift.Sources()
        if model_paths:
            sources = drift.Sources(sources.pricing, sources.llms, sources.sitemap, model_paths)
        if probe and not api_key:
            fail(
                "--probe sends a createTask with your key; set KIE_API_KEY (or use --sandbox) and try again."
            )
        http = stack.enter_context(httpx.Client(timeout=15, follow_redirects=True))
        snap = drift.read(sources, http)
        if not snap.read:
            fail("None of Kie's public sources could be read; check the connection and try again.", code=1)
        report = drift.compare(snap)
        if probe:
            drift.probe(report.findings, http, base_url=base_url, api_key=api_key or "")
    ended = drift.expired_offers()
    if json_:
        print_json(
            {
                "drift": report.drift,
                "findings": [f.as_json() for f in report.findings],
                "sources_read": report.read,
                "sources_failed": report.failed,
                "offers": report.notes,
                "ended_offers": [{"model": m, "ended": e} for m, e in ended],
                **({"sandbox": True} if sandbox else {}),
            }
        )
        raise typer.Exit(DRIFT if report.drift else 0)
    console.print(f"Read: {', '.join(report.read)}.")
    for name, problem in report.failed.items():
        console.print(f"[yellow]Not read:[/] {escape(name)} ({escape(problem)})")
    for kind, title in _KIND_TITLES.items():
        group = [f for f in report.findings if f.kind == kind]
        if not group:
            continue
        console.print(f"[bold]{title}[/] ({len(group)})")
        for finding in group:
            listed = f", listed {finding.listed}" if finding.listed else ""
            seen = ", ".join(finding.sources)
            console.print(
                f"  {escape(finding.model)}: {escape(finding.detail)} [dim]({escape(seen)}{listed})[/]"
            )
            if finding.probe:
                console.print(f"    probe: {escape(finding.probe)}")
    for note in report.notes:
        console.print(f"[dim]offer known here:[/] {escape(note)}")
    for model_id, ends in ended:
        console.print(f"[dim]offer ended {ends}, regular price used:[/] {escape(model_id)}")
    if report.drift:
        console.print(f"{len(report.findings)} differences between the catalogue and Kie.")
        raise typer.Exit(DRIFT)
    console.print("The catalogue matches Kie's sources.")
