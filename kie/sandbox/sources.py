"""Fixtures of Kie's public sources, so `kie models check` can be tested end to end over HTTP.

The sandbox serves, built from the bundled catalogue at request time (so they match it exactly):

- `POST /client/v1/model-pricing/page`: the pricing feed, paged like Kie's (`pageNum`, `pageSize`), one
  record per priced variant with `anchor`, `creditPrice`, `creditUnit` and, for an offer, `pricingDesc`;
- `GET /_sources/llms.txt`: the docs index, one line per docs page;
- `GET /_sources/sitemaps/models-0.xml`: the market sitemap with `<lastmod>` dates;
- `GET /_sources/model-paths.json`: the model-path list (ids, docs paths and input field names).

A test plants drift with `POST /_sandbox/sources` (or `SourceFixtures.plant`): `{"add": {"model": ID,
"credits": N, "fields": [...]}}` a model Kie has and the catalogue lacks; `{"remove": ID}` a model gone
from every source; `{"price": {"model": ID, "credits": N}}` a changed price on its first variant;
`{"expired_offer": {"model": ID, "credits": N, "ended": "YYYY-MM-DD"}}` an offer still shown after its end;
`{"reset": true}` back to matching fixtures. `GET /_sandbox/sources` shows what is planted.

These routes are mounted as a sandbox "family" with no tasks, so the app needs no change to serve them.
"""

from __future__ import annotations

import datetime as _dt
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from kie import catalog
from kie.catalog.drift import docs_path
from kie.catalog.pricing import offer_active, today
from kie.catalog.spec import ModelSpec, PriceRule

LISTED = "2026-08-19"  # the date of the docs crawl the catalogue was built from
UNITS = {"task": "per request", "second": "per second", "output": "per output", "input-second": "per second"}


def offer_text(ends: str) -> str:
    day = _dt.date.fromisoformat(ends)
    return (
        f"Limited-Time Offer: OFF until {day.strftime('%b')} {day.day}, {day.year} 06:00 UTC "
        "(prices above already reflect the discount)"
    )


def _watched(spec: ModelSpec) -> bool:
    return spec.status in ("active", "preview")


def anchor(model_id: str) -> str:
    return f"https://kie.ai/{model_id.replace('/', '-')}?model={quote(model_id, safe='')}"


def _rows_for(spec: ModelSpec, rule: PriceRule) -> list[dict[str, Any]]:
    unit = " " + UNITS[rule.per]
    link = anchor(spec.id)
    offer = rule.offer if rule.offer is not None and offer_active(rule.offer) else None
    items: list[tuple[str, float, str]] = []
    if rule.table is not None:
        for key, credits in rule.table.items():
            discounted = offer.table.get(key) if offer is not None and offer.table is not None else None
            if discounted is not None and offer is not None:
                items.append((key, discounted, offer_text(offer.ends)))
            else:
                items.append((key, credits, ""))
    else:
        assert rule.credits is not None
        if offer is not None and offer.credits is not None:
            items.append(("", offer.credits, offer_text(offer.ends)))
        else:
            items.append(("", rule.credits, ""))
    return [
        {
            "modelDescription": f"{spec.name} {key}".strip(),
            "interfaceType": spec.media,
            "provider": spec.vendor or "",
            "creditPrice": f"{credits:g}",
            "creditUnit": unit,
            "usdPrice": f"{credits * 0.005:g}",
            "anchor": link,
            "pricingDesc": desc,
        }
        for key, credits, desc in items
    ]


@dataclass
class SourceFixtures:
    """The four sources, with whatever drift a test planted."""

    added: dict[str, dict[str, Any]] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)
    prices: dict[str, float] = field(default_factory=dict)
    expired: dict[str, tuple[float, str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def plant(self, body: dict[str, Any]) -> None:
        """Apply one drift description (see the module docstring); unknown keys raise `ValueError`."""
        allowed = {"add", "remove", "price", "expired_offer", "reset"}
        unknown = set(body) - allowed
        if unknown:
            raise ValueError(f"unknown drift {sorted(unknown)}; use {', '.join(sorted(allowed))}")
        with self.lock:
            if body.get("reset"):
                self.added.clear()
                self.removed.clear()
                self.prices.clear()
                self.expired.clear()
            if "add" in body:
                add = dict(body["add"])
                self.added[str(add["model"])] = add
            if "remove" in body:
                self.removed.add(str(body["remove"]))
            if "price" in body:
                self.prices[str(body["price"]["model"])] = float(body["price"]["credits"])
            if "expired_offer" in body:
                offer = body["expired_offer"]
                self.expired[str(offer["model"])] = (float(offer["credits"]), str(offer["ended"]))

    def planted(self) -> dict[str, Any]:
        with self.lock:
            return {
                "added": sorted(self.added),
                "removed": sorted(self.removed),
                "prices": dict(self.prices),
                "expired_offers": {k: {"credits": c, "ended": e} for k, (c, e) in self.expired.items()},
            }

    def _models(self) -> list[ModelSpec]:
        return [m for m in catalog.all_models() if _watched(m) and m.id not in self.removed]

    def pricing_records(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        with self.lock:
            for spec in self._models():
                if spec.price is None:
                    continue
                rows = _rows_for(spec, spec.price)
                if spec.id in self.prices:
                    rows[0] = {**rows[0], "creditPrice": f"{self.prices[spec.id]:g}", "pricingDesc": ""}
                if spec.id in self.expired:
                    credits, ended = self.expired[spec.id]
                    rows[0] = {**rows[0], "creditPrice": f"{credits:g}", "pricingDesc": offer_text(ended)}
                records.extend(rows)
            for model_id, add in self.added.items():
                records.append(
                    {
                        "modelDescription": str(add.get("name") or model_id),
                        "interfaceType": "image",
                        "creditPrice": f"{float(add.get('credits', 1)):g}",
                        "creditUnit": " per image",
                        "anchor": anchor(model_id),
                        "pricingDesc": "",
                    }
                )
        return records

    def docs_paths(self) -> list[str]:
        with self.lock:
            paths = {docs_path(m.docs_url) for m in self._models() if m.docs_url}
            paths |= {f"market/{model_id}" for model_id in self.added}
        return sorted(p for p in paths if p)

    def llms_text(self) -> str:
        lines = [
            "# Kie.ai docs",
            "",
            "- [Market quickstart](https://docs.kie.ai/market/quickstart.md)",
            "- [Get task details](https://docs.kie.ai/market/common/get-task-detail.md)",
        ]
        lines += [f"- [{path}](https://docs.kie.ai/{path}.md)" for path in self.docs_paths()]
        return "\n".join(lines) + "\n"

    def sitemap_xml(self) -> str:
        with self.lock:
            entries = [(m.id, LISTED) for m in self._models()]
            entries += [(model_id, today().isoformat()) for model_id in self.added]
        urls = "".join(
            f"<url><loc>https://kie.ai/{escape(mid.replace('/', '-'))}</loc><lastmod>{day}</lastmod></url>"
            for mid, day in entries
        )
        return f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'

    def model_paths(self) -> dict[str, Any]:
        models: list[dict[str, Any]] = []
        with self.lock:
            for spec in self._models():
                if spec.endpoint.kind != "market":
                    continue
                models.append(
                    {
                        "model": spec.id,
                        "path": docs_path(spec.docs_url) if spec.docs_url else None,
                        "fields": list(spec.fields) if spec.schema_published else None,
                    }
                )
            for model_id, add in self.added.items():
                models.append({"model": model_id, "path": f"market/{model_id}", "fields": add.get("fields")})
        return {"models": models}


class SourcesSandbox:
    """Mounted like an API family (see `kie.sandbox.families`), without tasks of its own."""

    api = "sources"

    def __init__(self, state: Any, engine: Any) -> None:
        self.fixtures = SourceFixtures()

    def routes(self) -> list[Route]:
        return [
            Route("/client/v1/model-pricing/page", self.pricing, methods=["POST"]),
            Route("/_sources/llms.txt", self.llms, methods=["GET"]),
            Route("/_sources/sitemaps/models-0.xml", self.sitemap, methods=["GET"]),
            Route("/_sources/model-paths.json", self.model_paths, methods=["GET"]),
            Route("/_sandbox/sources", self.plant, methods=["GET", "POST"]),
        ]

    def callback_bodies(self, task: Any) -> list[dict[str, Any]]:
        return []

    async def pricing(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        page = max(1, int(body.get("pageNum") or 1))
        size = min(100, max(1, int(body.get("pageSize") or 10)))
        records = self.fixtures.pricing_records()
        pages = max(1, -(-len(records) // size))
        chunk = records[(page - 1) * size : page * size]
        data = {"records": chunk, "total": len(records), "pages": pages, "current": page, "size": size}
        return JSONResponse({"code": 200, "msg": "success", "data": data})

    async def llms(self, request: Request) -> Response:
        return PlainTextResponse(self.fixtures.llms_text())

    async def sitemap(self, request: Request) -> Response:
        return Response(self.fixtures.sitemap_xml(), media_type="application/xml")

    async def model_paths(self, request: Request) -> Response:
        return JSONResponse(self.fixtures.model_paths())

    async def plant(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                body = await request.json()
                if not isinstance(body, dict):
                    raise ValueError("the drift must be a JSON object")
                self.fixtures.plant(body)
            except (ValueError, KeyError, TypeError) as exc:
                return JSONResponse({"code": 422, "msg": f"bad drift: {exc}"}, status_code=422)
        return JSONResponse({"code": 200, "msg": "success", "data": self.fixtures.planted()})
