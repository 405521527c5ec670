"""Refreshing prices from Kie's public pricing endpoint (`client/v1/model-pricing/page`, kie-api.md §7).

The endpoint is unofficial and lists one row per priced variant with a free-text description; the model
id is the `model=` parameter of the row's `anchor` link. Rows are used conservatively: a fetched price only
fills a model whose catalogue price is unknown, and only when that model has exactly one row. Everything
else is reported for a human to compare. Fetched prices are saved in `<KIE_HOME>/synced-prices.json`.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx

from kie.catalog.loader import load
from kie.catalog.spec import PriceRule
from kie.errors import TransportError

PRICING_URL = "https://api.kie.ai/client/v1/model-pricing/page"
SYNCED_FILE = "synced-prices.json"


@dataclass(frozen=True)
class PriceRow:
    model: str
    description: str
    credits: float
    unit: str
    offer_text: str = ""


def _rows(records: list[dict[str, Any]]) -> list[PriceRow]:
    rows = []
    for record in records:
        anchor = str(record.get("anchor") or "")
        model = (parse_qs(urlparse(anchor).query).get("model") or [""])[0]
        try:
            credits = float(record.get("creditPrice"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if model:
            rows.append(
                PriceRow(
                    model,
                    str(record.get("modelDescription", "")),
                    credits,
                    str(record.get("creditUnit", "")).strip(),
                    str(record.get("pricingDesc") or record.get("discountDesc") or "").strip(),
                )
            )
    return rows


def fetch(
    client: httpx.Client | None = None, *, url: str = PRICING_URL, page_size: int = 100
) -> list[PriceRow]:
    return _rows(fetch_records(client, url=url, page_size=page_size))


def fetch_records(
    client: httpx.Client | None = None, *, url: str = PRICING_URL, page_size: int = 100
) -> list[dict[str, Any]]:
    """All pricing rows; raises `TransportError` with one clear sentence when offline."""
    owned = client is None
    http = client or httpx.Client(timeout=15)
    rows: list[dict[str, Any]] = []
    try:
        page = 1
        while True:
            response = http.post(url, json={"pageNum": page, "pageSize": page_size})
            body = response.json()
            data = body.get("data") or {}
            rows.extend(r for r in data.get("records") or [] if isinstance(r, dict))
            if page >= int(data.get("pages") or 1):
                break
            page += 1
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        raise TransportError(
            f"Could not read Kie's pricing endpoint ({exc.__class__.__name__}); "
            "the bundled prices are unchanged."
        ) from exc
    finally:
        if owned:
            http.close()
    return rows


def fetch_text(client: httpx.Client | None, url: str, what: str) -> str:
    """A public text source (llms.txt, a sitemap, a JSON list); `TransportError` in one sentence."""
    owned = client is None
    http = client or httpx.Client(timeout=15, follow_redirects=True)
    try:
        response = http.get(url)
        response.raise_for_status()
        return response.text
    except httpx.HTTPError as exc:
        raise TransportError(f"Could not read {what} at {url} ({exc.__class__.__name__}).") from exc
    finally:
        if owned:
            http.close()


@dataclass(frozen=True)
class SyncReport:
    filled: dict[str, float]
    compared: list[tuple[str, str, list[PriceRow]]]
    unmatched: list[PriceRow]


def reconcile(rows: list[PriceRow]) -> SyncReport:
    models = load().models
    by_model: dict[str, list[PriceRow]] = defaultdict(list)
    unmatched: list[PriceRow] = []
    for row in rows:
        (by_model[row.model] if row.model in models else unmatched).append(row)
    filled: dict[str, float] = {}
    compared = []
    for model_id, group in sorted(by_model.items()):
        spec = models[model_id]
        if spec.price is None and len(group) == 1:
            filled[model_id] = group[0].credits
        else:
            compared.append((model_id, "unknown" if spec.price is None else spec.price.source, group))
    return SyncReport(filled, compared, unmatched)


def save(home: Path, filled: dict[str, float]) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / SYNCED_FILE
    path.write_text(json.dumps({"fetched_at": int(time.time()), "credits": filled}, indent=2))
    return path


def synced_overrides(home: Path) -> dict[str, PriceRule]:
    """Flat prices saved by a previous sync (used only where the catalogue has none)."""
    path = home / SYNCED_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    source = (
        f"kie pricing endpoint, synced {time.strftime('%Y-%m-%d', time.gmtime(data.get('fetched_at', 0)))}"
    )
    return {m: PriceRule(credits=float(c), source=source) for m, c in (data.get("credits") or {}).items()}
