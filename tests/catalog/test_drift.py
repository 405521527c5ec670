"""Comparing the catalogue with what Kie's sources say, without a network."""

from __future__ import annotations

import datetime as dt

from kie.catalog import drift
from kie.catalog.sync import PriceRow

DAY = dt.date(2026, 10, 10)


def row(model: str, credits: float, offer: str = "", description: str = "") -> PriceRow:
    return PriceRow(model, description or model, credits, "per image", offer)


def test_offer_end_dates_in_kies_wordings() -> None:
    text = "Limited-Time 1080P Offer: 28% OFF until Sep 17, 2026 06:00 UTC (prices above already reflect it)"
    assert drift.offer_end(text) == dt.date(2026, 9, 17)
    assert drift.offer_end("Discount ends 2026-11-02") == dt.date(2026, 11, 2)
    assert drift.offer_end("1K and 2K images are priced the same") is None
    assert drift.offer_end("") is None


def test_a_running_offer_not_in_the_catalogue_is_drift() -> None:
    snap = drift.Snapshot(rows=[row("z-image", 0.6, "20% off until Dec 31, 2026")])
    (finding,) = drift.compare(snap, on=DAY).findings
    assert finding.kind == "offer" and "until 2026-12-31" in finding.detail


def test_a_catalogued_offer_still_running_is_only_noted() -> None:
    snap = drift.Snapshot(rows=[row("bytedance/seedance-2-5", 114, "28% OFF until Sep 17, 2026", "1080p")])
    report = drift.compare(snap, on=dt.date(2026, 9, 1))
    assert report.findings == [] and report.notes == [
        "bytedance/seedance-2-5: offer of 114 credits until 2026-09-17"
    ]


def test_after_its_end_the_same_row_is_an_expired_offer_and_not_a_price() -> None:
    snap = drift.Snapshot(rows=[row("bytedance/seedance-2-5", 114, "28% OFF until Sep 17, 2026", "1080p")])
    (finding,) = drift.compare(snap, on=DAY).findings
    assert finding.kind == "expired-offer" and "114" in finding.detail


def test_a_published_price_for_an_unpriced_model_is_reported() -> None:
    snap = drift.Snapshot(rows=[row("google/gemini-3-8-flash-tts", 3)])
    (finding,) = drift.compare(snap, on=DAY).findings
    assert finding.kind == "price" and "kie has no price" in finding.detail


def test_aliases_and_known_prices_are_not_drift() -> None:
    snap = drift.Snapshot(rows=[row("nano-banana-pro", 18), row("nano-banana-pro", 24), row("suno/V6", 12)])
    assert drift.compare(snap, on=DAY).findings == []


def test_schema_fields_added_and_removed() -> None:
    paths = [drift.ModelPath("nano-banana-pro", None, ("prompt", "image_input", "resolution", "seed"))]
    snap = drift.Snapshot(model_paths=paths)
    findings = {(f.model, f.kind): f for f in drift.compare(snap, on=DAY).findings}
    schema = findings[("nano-banana-pro", "schema")]
    assert "added at Kie: seed" in schema.detail and "gone at Kie:" in schema.detail
    assert ("z-image", "gone") in findings  # absent from an authoritative model-path list


def test_docs_index_new_page_and_gone_page() -> None:
    snap = drift.Snapshot(docs_paths={"market/quickstart", "market/acme/thing"})
    findings = {(f.model, f.kind) for f in drift.compare(snap, on=DAY).findings}
    assert ("docs page market/acme/thing", "new") in findings
    assert ("nano-banana-2", "gone") in findings
    assert not any(model.endswith("quickstart") for model, _ in findings)


def test_docs_path_forms() -> None:
    assert drift.docs_path("https://docs.kie.ai/market/seedream/5-flash-text-to-image.md") == (
        "market/seedream/5-flash-text-to-image"
    )
    assert drift.docs_path("https://kie.ai/pricing") is None
    assert drift.parse_llms("- [a](https://docs.kie.ai/market/a/b.md)\nsee https://x.org/y") == {"market/a/b"}
