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
                "notes": list(spec.notes),
                **({"sources": _sources(resolved, spec)} if sources else {}),
            }
        )
        return
    if resolved.alias is not None:
        console.print(f"[dim]{model!r} is an alias of {spec.id}.[/] {resolved.alias.note or ''}")
    console.print(f"[bold]{spec.name}[/]  ({spec.id})  {spec.status}")
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
