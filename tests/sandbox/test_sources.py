"""The sandbox's copies of Kie's public sources, read over HTTP like the real ones."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx

from kie import catalog
from kie.catalog import drift, sync
from kie.sandbox.server import SandboxServer


def test_pricing_feed_pages_like_kies_and_sync_reads_it(sandbox: SandboxServer) -> None:
    url = f"{sandbox.url}/client/v1/model-pricing/page"
    first = httpx.post(url, json={"pageNum": 1, "pageSize": 7}).json()
    assert first["code"] == 200 and len(first["data"]["records"]) == 7
    assert first["data"]["pages"] == -(-first["data"]["total"] // 7)
    rows = sync.fetch(url=url, page_size=50)
    assert len(rows) == first["data"]["total"]
    priced = {m.id for m in catalog.all_models() if m.price is not None and m.status in ("active", "preview")}
    assert {r.model for r in rows} == priced
    assert {r.credits for r in rows if r.model == "nano-banana-pro"} == {18, 24}
    report = sync.reconcile(rows)
    assert report.filled == {} and report.unmatched == []  # everything already known


def test_an_ended_catalogue_offer_shows_the_regular_price(sandbox: SandboxServer) -> None:
    rows = sync.fetch(url=f"{sandbox.url}/client/v1/model-pricing/page")
    seedance = [r for r in rows if r.model == "bytedance/seedance-2-5"]
    assert {r.credits for r in seedance} == {28, 63, 158} and not any(r.offer_text for r in seedance)


def test_docs_index_sitemap_and_model_paths(sandbox: SandboxServer) -> None:
    llms = httpx.get(f"{sandbox.url}/_sources/llms.txt").text
    assert "https://docs.kie.ai/market/seedream/5-flash-text-to-image.md" in llms
    root = ET.fromstring(httpx.get(f"{sandbox.url}/_sources/sitemaps/models-0.xml").content)
    slugs = {drift.parse_sitemap(ET.tostring(root, encoding="unicode")).get("wan-3-0-video-prime")}
    assert slugs == {"2026-08-19"}
    paths = httpx.get(f"{sandbox.url}/_sources/model-paths.json").json()["models"]
    entry = next(p for p in paths if p["model"] == "grok-imagine-image-2-0/image-edit")
    assert set(entry["fields"]) == {"prompt", "image_urls", "aspect_ratio"}
    assert not any(p["model"].startswith("suno/V4") for p in paths)  # deprecated: gone from Kie's lists


def test_planting_and_resetting_drift(sandbox: SandboxServer) -> None:
    url = f"{sandbox.url}/_sandbox/sources"
    assert httpx.post(url, json={"add": {"model": "acme/x", "credits": 3}}).json()["data"]["added"] == [
        "acme/x"
    ]
    assert "acme/x" in httpx.get(f"{sandbox.url}/_sources/llms.txt").text
    bad = httpx.post(url, json={"rename": "x"})
    assert bad.status_code == 422 and "unknown drift" in bad.json()["msg"]
    state = httpx.post(url, json={"reset": True}).json()["data"]
    assert state == {"added": [], "removed": [], "prices": {}, "expired_offers": {}}
    assert "acme/x" not in httpx.get(f"{sandbox.url}/_sources/llms.txt").text


def test_an_expired_offer_row_carries_its_end_date(sandbox: SandboxServer) -> None:
    drifted = {"expired_offer": {"model": "z-image", "credits": 0.5, "ended": "2026-09-01"}}
    httpx.post(f"{sandbox.url}/_sandbox/sources", json=drifted)
    rows = sync.fetch(url=f"{sandbox.url}/client/v1/model-pricing/page")
    (row,) = [r for r in rows if r.model == "z-image"]
    assert row.credits == 0.5 and drift.offer_end(row.offer_text) is not None
    assert str(drift.offer_end(row.offer_text)) == "2026-09-01"
