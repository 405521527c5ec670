"""Finding where the catalogue and Kie's public sources disagree (`kie models check`).

Kie moves faster than a bundled catalogue: new models appear, pages vanish, prices change and time-limited
offers end. Every source read here needs no key:

- the pricing feed `kie models sync-prices` reads (one row per priced variant, with any offer text);
- the docs' `llms.txt` (every docs page; a Market model's page is its evidence of existence);
- the market sitemap (`<lastmod>` dates when a page was listed or changed);
- a model-path list (JSON: model ids with their input fields), where one is available.

Each finding is about one model and one kind, so a model that is new in three sources is reported once.
Probing (`probe`) is a separate, explicit step: it sends a createTask with an empty input, which Kie is
reported to answer "This field is required" for an existing model without creating a task.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlparse

import httpx

from kie.catalog.loader import load
from kie.catalog.pricing import offer_active, rule_values, today
from kie.catalog.spec import ModelSpec
from kie.catalog.sync import PRICING_URL, PriceRow, _rows, fetch_records, fetch_text
from kie.errors import TransportError

LLMS_URL = "https://docs.kie.ai/llms.txt"
SITEMAP_URL = "https://kie.ai/sitemaps/models-0.xml"
DOCS_HOST = "docs.kie.ai"

Kind = Literal["new", "gone", "price", "offer", "expired-offer", "schema"]
KINDS: tuple[Kind, ...] = ("new", "gone", "price", "offer", "expired-offer", "schema")

_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, 1)}
_UNTIL = re.compile(r"until\s+([A-Za-z]{3})[a-z]*\.?\s+(\d{1,2}),?\s+(\d{4})", re.IGNORECASE)
_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_OFFER_WORDS = re.compile(r"\b(off|offer|discount|promo|limited)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Sources:
    """Where each public source is read from; `model_paths` is optional (no public default is known)."""

    pricing: str = PRICING_URL
    llms: str | None = LLMS_URL
    sitemap: str | None = SITEMAP_URL
    model_paths: str | None = None

    @classmethod
    def at(cls, base: str) -> Sources:
        """All four at one host, as the sandbox serves them."""
        root = base.rstrip("/")
        return cls(
            pricing=f"{root}/client/v1/model-pricing/page",
            llms=f"{root}/_sources/llms.txt",
            sitemap=f"{root}/_sources/sitemaps/models-0.xml",
            model_paths=f"{root}/_sources/model-paths.json",
        )


@dataclass(frozen=True)
class ModelPath:
    model: str
    path: str | None = None
    fields: tuple[str, ...] | None = None


@dataclass
class Snapshot:
    """What the sources said, plus the ones that could not be read."""

    rows: list[PriceRow] = field(default_factory=list)
    docs_paths: set[str] | None = None
    listed: dict[str, str] = field(default_factory=dict)
    model_paths: list[ModelPath] | None = None
    read: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


@dataclass
class Finding:
    model: str
    kind: Kind
    detail: str
    sources: list[str] = field(default_factory=list)
    listed: str | None = None
    probe: str | None = None

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "model": self.model,
            "kind": self.kind,
            "detail": self.detail,
            "sources": self.sources,
        }
        if self.listed:
            data["listed"] = self.listed
        if self.probe:
            data["probe"] = self.probe
        return data


@dataclass
class Report:
    findings: list[Finding]
    notes: list[str]
    read: list[str]
    failed: dict[str, str]

    @property
    def drift(self) -> bool:
        return bool(self.findings)


def docs_path(url: str) -> str | None:
    """`market/seedream/5-lite-text-to-image` for any form of a docs.kie.ai page URL."""
    parsed = urlparse(url.strip())
    if parsed.netloc and parsed.netloc != DOCS_HOST:
        return None
    path = parsed.path.strip("/")
    if path.endswith(".md"):
        path = path[:-3]
    return path.lower() or None


def parse_llms(text: str) -> set[str]:
    found = set()
    for url in re.findall(r"https?://[^\s)\]>\"']+", text):
        path = docs_path(url)
        if path:
            found.add(path)
    return found


def parse_sitemap(text: str) -> dict[str, str]:
    """slug -> lastmod date (YYYY-MM-DD)."""
    listed: dict[str, str] = {}
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ValueError(f"the sitemap is not XML ({exc})") from exc
    for node in root.iter():
        if not node.tag.endswith("url"):
            continue
        loc = next((c.text for c in node if c.tag.endswith("loc")), None)
        mod = next((c.text for c in node if c.tag.endswith("lastmod")), None)
        if loc:
            slug = urlparse(loc.strip()).path.strip("/")
            listed[slug] = (mod or "").strip()[:10]
    return listed


def parse_model_paths(text: str) -> list[ModelPath]:
    data = json.loads(text)
    items = data.get("models") if isinstance(data, Mapping) else data
    paths = []
    for item in items or []:
        if isinstance(item, str):
            paths.append(ModelPath(item))
        elif isinstance(item, Mapping) and isinstance(item.get("model"), str):
            fields = item.get("fields")
            paths.append(
                ModelPath(
                    item["model"],
                    str(item["path"]) if item.get("path") else None,
                    tuple(str(f) for f in fields) if isinstance(fields, list) else None,
                )
            )
    return paths


def offer_end(text: str) -> _dt.date | None:
    """The end date an offer text names ("28% OFF until Sep 17, 2026 06:00 UTC"), if it is an offer."""
    if not text or not _OFFER_WORDS.search(text):
        return None
    match = _UNTIL.search(text)
    if match:
        month = _MONTHS.get(match.group(1).lower()[:3])
        if month:
            return _dt.date(int(match.group(3)), month, int(match.group(2)))
    iso = _ISO.search(text)
    if iso:
        return _dt.date(int(iso.group(1)), int(iso.group(2)), int(iso.group(3)))
    return None


def read(sources: Sources, client: httpx.Client | None = None) -> Snapshot:
    """Every source that answers; the others are named in `failed`, so a partial check still helps."""
    snap = Snapshot()
    try:
        snap.rows = _rows(fetch_records(client, url=sources.pricing))
        snap.read.append("pricing feed")
    except TransportError as exc:
        snap.failed["pricing feed"] = str(exc)
    readers: list[tuple[str, str | None, str]] = [
        ("docs index", sources.llms, "Kie's docs index"),
        ("sitemap", sources.sitemap, "Kie's model sitemap"),
        ("model-path list", sources.model_paths, "the model-path list"),
    ]
    for name, url, what in readers:
        if not url:
            continue
        try:
            text = fetch_text(client, url, what)
            if name == "docs index":
                snap.docs_paths = parse_llms(text)
            elif name == "sitemap":
                snap.listed = parse_sitemap(text)
            else:
                snap.model_paths = parse_model_paths(text)
            snap.read.append(name)
        except (TransportError, ValueError) as exc:
            snap.failed[name] = str(exc)
    return snap


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _watched(models: Iterable[ModelSpec]) -> list[ModelSpec]:
    return [m for m in models if m.status in ("active", "preview")]


class _Collector:
    def __init__(self) -> None:
        self.items: dict[tuple[str, Kind], Finding] = {}

    def add(self, model: str, kind: Kind, detail: str, source: str) -> Finding:
        key = (model, kind)
        found = self.items.get(key)
        if found is None:
            found = self.items[key] = Finding(model, kind, detail, [source])
        elif source not in found.sources:
            found.sources.append(source)
        return found


def _known_ids() -> set[str]:
    data = load()
    return set(data.models) | set(data.aliases)


def _listed_date(listed: Mapping[str, str], model_id: str) -> str | None:
    for slug in (model_id.replace("/", "-"), model_id.rsplit("/", 1)[-1]):
        if listed.get(slug):
            return listed[slug]
    return None


def compare(snap: Snapshot, *, on: _dt.date | None = None) -> Report:
    """The drift between the catalogue and `snap`: one finding per model and kind."""
    day = on or today()
    data = load()
    models = data.models
    known = _known_ids()
    out = _Collector()
    notes: list[str] = []

    by_model: dict[str, list[PriceRow]] = defaultdict(list)
    for row in snap.rows:
        by_model[row.model].append(row)
    for model_id in sorted(by_model):
        if model_id not in known:
            out.add(model_id, "new", "new at Kie (it has a price), missing here", "pricing feed")
            continue
        spec = models[model_id] if model_id in models else models[data.aliases[model_id].target]
        _compare_prices(spec, by_model[model_id], out, day, notes)

    if snap.model_paths is not None:
        at_kie = {p.model: p for p in snap.model_paths}
        for model_id, entry in sorted(at_kie.items()):
            if model_id not in known:
                out.add(model_id, "new", "new at Kie, missing here", "model-path list")
            elif entry.fields is not None and model_id in models:
                _compare_fields(models[model_id], entry.fields, out)
        for spec in _watched(models.values()):
            if spec.id not in at_kie and spec.endpoint.kind == "market":
                out.add(spec.id, "gone", "here, and gone from Kie's model-path list", "model-path list")

    if snap.docs_paths is not None:
        ours: dict[str, ModelSpec] = {}
        for spec in models.values():
            page = docs_path(spec.docs_url) if spec.docs_url else None
            if page and (page not in ours or _watched([spec])):
                ours[page] = spec
        for path in sorted(snap.docs_paths):
            if path.startswith("market/") and path.count("/") >= 1 and path not in ours:
                candidate = path.removeprefix("market/")
                if candidate in known or _is_overview(path):
                    continue
                name = candidate if (candidate, "new") in out.items else f"docs page {path}"
                out.add(name, "new", "a Market docs page kie has no model for", "docs index")
        for page, spec in sorted(ours.items(), key=lambda kv: kv[1].id):
            if spec.status in ("active", "preview") and page not in snap.docs_paths:
                out.add(spec.id, "gone", "here, and its docs page is gone from Kie's index", "docs index")

    findings = sorted(out.items.values(), key=lambda f: (KINDS.index(f.kind), f.model))
    for finding in findings:
        if finding.kind == "new":
            finding.listed = _listed_date(snap.listed, finding.model)
    return Report(findings, notes, list(snap.read), dict(snap.failed))


def _is_overview(path: str) -> bool:
    tail = path.rsplit("/", 1)[-1]
    return tail in ("quickstart", "overview", "index") or path.startswith("market/common/")


def _compare_prices(
    spec: ModelSpec, rows: list[PriceRow], out: _Collector, day: _dt.date, notes: list[str]
) -> None:
    rule = spec.price
    ours = rule_values(rule, on=day) if rule is not None else set()
    differing: list[PriceRow] = []
    for row in rows:
        ends = offer_end(row.offer_text)
        if ends is not None and ends < day:
            out.add(
                spec.id,
                "expired-offer",
                f"Kie still shows an offer price of {_fmt(row.credits)} credits ({row.description}) "
                f"that ended {ends.isoformat()}; it is not used here",
                "pricing feed",
            )
            continue
        if ends is not None:
            catalogued = rule is not None and rule.offer is not None and rule.offer.ends == ends.isoformat()
            if not catalogued:
                out.add(
                    spec.id,
                    "offer",
                    f"Kie offers {_fmt(row.credits)} credits ({row.description}) until {ends.isoformat()}, "
                    "not recorded here",
                    "pricing feed",
                )
                continue
            notes.append(f"{spec.id}: offer of {_fmt(row.credits)} credits until {ends.isoformat()}")
        if float(row.credits) not in ours:
            differing.append(row)
    if differing:
        theirs = ", ".join(f"{_fmt(r.credits)} ({r.description or r.unit})" for r in differing)
        here = "no price" if rule is None else " / ".join(_fmt(v) for v in sorted(ours))
        out.add(spec.id, "price", f"Kie lists {theirs}; kie has {here}", "pricing feed")


def _compare_fields(spec: ModelSpec, fields: tuple[str, ...], out: _Collector) -> None:
    if not spec.schema_published:
        return
    theirs, ours = set(fields), set(spec.fields)
    added, removed = sorted(theirs - ours), sorted(ours - theirs)
    if added or removed:
        parts = []
        if added:
            parts.append("added at Kie: " + ", ".join(added))
        if removed:
            parts.append("gone at Kie: " + ", ".join(removed))
        out.add(spec.id, "schema", "; ".join(parts), "model-path list")


def expired_offers(on: _dt.date | None = None) -> list[tuple[str, str]]:
    """Catalogue offers that have ended: (model, end date). Their prices are no longer used."""
    day = on or today()
    return [
        (m.id, m.price.offer.ends)
        for m in load().models.values()
        if m.price is not None and m.price.offer is not None and not offer_active(m.price.offer, day)
    ]


def probe(findings: list[Finding], client: httpx.Client, *, base_url: str, api_key: str) -> None:
    """Ask Kie whether each new or gone id exists, with a createTask whose input is empty.

    Sent only when the user asked for it (`--probe`). A gone model whose catalogue schema has no required
    field is not probed: an empty input could then start a real, paid task."""
    models = load().models
    url = base_url.rstrip("/") + "/api/v1/jobs/createTask"
    for finding in findings:
        if finding.kind not in ("new", "gone") or finding.model.startswith("docs page "):
            continue
        spec = models.get(finding.model)
        if spec is not None and not any(f.required for f in spec.fields.values()):
            finding.probe = "not probed: no required field, so an empty input could start a paid task"
            continue
        try:
            response = client.post(
                url,
                json={"model": finding.model, "input": {}},
                headers={"Authorization": f"Bearer {api_key}"},
            )
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            finding.probe = f"no answer ({exc.__class__.__name__})"
            continue
        msg = str(body.get("msg") or body.get("message") or "") if isinstance(body, Mapping) else ""
        code = body.get("code") if isinstance(body, Mapping) else None
        if "required" in msg.lower():
            finding.probe = "exists at Kie (it asked for its required fields)"
        elif code == 200:
            finding.probe = "exists at Kie; it accepted the empty input and created a task"
        elif "not supported" in msg.lower() or "not exist" in msg.lower() or "invalid model" in msg.lower():
            finding.probe = f"not at Kie ({msg})"
        else:
            finding.probe = f"unclear (code {code}: {msg})"
