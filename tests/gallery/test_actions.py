"""Pricing and planning the gallery's spending actions (the runs themselves are in test_browser)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kie import catalog
from kie.errors import BudgetExceededError, ConfigurationError, ValidationError
from kie.gallery.actions import Actions, form_fields, next_rung, parse_form
from kie.gallery.queries import Gallery
from kie.store import Ledger, NewJob
from tests.gallery.seed import IMAGE_MODEL


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield ledger
    ledger.close()


def actions(ledger: Ledger, tmp_path: Path, *, key: str | None, cap: float | None) -> Actions:
    from kie.config import Settings

    settings = Settings(api_key=key, home=tmp_path / "home")
    return Actions(
        ledger, Gallery(ledger, tmp_path / "index"), settings=settings, output_dir=tmp_path, max_credits=cap
    )


def test_escalation_climbs_the_ladder_and_stops_at_its_top() -> None:
    ladder = catalog.load().escalation["image"]
    assert next_rung(catalog.get(ladder[0])).id == ladder[1]
    assert next_rung(catalog.get(IMAGE_MODEL)).id == ladder[ladder.index(IMAGE_MODEL) + 1]
    with pytest.raises(ValidationError, match="last rung"):
        next_rung(catalog.get(ladder[-1]))


def test_a_quote_names_the_model_price_and_budget(ledger: Ledger, tmp_path: Path) -> None:
    (job_id,) = ledger.add_jobs(
        None, [NewJob(IMAGE_MODEL, {"prompt": "a fox", "aspect_ratio": "16:9"}, estimated_credits=4)]
    )
    doer = actions(ledger, tmp_path, key="sk-test", cap=10)
    quote = doer.quote(job_id, "rerun")
    assert (quote.model, quote.credits, quote.allowed) == (IMAGE_MODEL, 4.0, True)
    assert quote.input["aspect_ratio"] == "16:9" and quote.budget.remaining == 10
    up = doer.quote(job_id, "escalate")
    assert up.model != IMAGE_MODEL and up.input["prompt"] == "a fox" and up.credits is not None
    doer.max_credits = 3
    refused = doer.quote(job_id, "rerun")
    assert not refused.allowed and "more than the 3 left" in (refused.refusal or "")


async def test_start_refuses_without_writing_when_over_budget_or_without_a_key(
    ledger: Ledger, tmp_path: Path
) -> None:
    (job_id,) = ledger.add_jobs(None, [NewJob(IMAGE_MODEL, {"prompt": "a fox"}, estimated_credits=4)])
    before = len(ledger.jobs())
    with pytest.raises(BudgetExceededError):
        await actions(ledger, tmp_path, key="sk-test", cap=1).start(job_id, "rerun")
    with pytest.raises(ConfigurationError, match="KIE_API_KEY"):
        await actions(ledger, tmp_path, key=None, cap=None).start(job_id, "rerun")
    assert len(ledger.jobs()) == before and ledger.batch("gallery") is None


def test_the_edit_form_round_trips_through_the_catalogue() -> None:
    spec = catalog.get(IMAGE_MODEL)
    fields = {f["name"]: f for f in form_fields(spec, {"prompt": "a fox", "aspect_ratio": "16:9"})}
    assert fields["prompt"]["widget"] == "textarea" and fields["aspect_ratio"]["widget"] == "select"
    assert "16:9" in fields["aspect_ratio"]["choices"]
    values = parse_form(spec, {"prompt": "a wolf", "aspect_ratio": "1:1", "output_format": ""})
    assert values == {"prompt": "a wolf", "aspect_ratio": "1:1"}
    with pytest.raises(ValidationError, match="aspect_ratio"):
        catalog.validate(spec, parse_form(spec, {"prompt": "a wolf", "aspect_ratio": "16-9"}))
