"""The gallery in real Chromium, asserting on the DOM: grid, infinite scroll, filters and the back
button, search, the detail panel, the compare slider, the matrix, and re-runs through the runner."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from kie.gallery.server import GalleryServer
from kie.store import DONE
from tests.gallery.conftest import PAGE_SIZE, screenshots_dir
from tests.gallery.seed import IMAGE_MODEL, MATRIX_MODELS, MATRIX_PROMPTS, Seeded

pytestmark = pytest.mark.timeout(180)


def card_ids(page: Any) -> list[str]:
    return list(page.locator("[data-testid=card]").evaluate_all("cards => cards.map(c => c.dataset.job)"))


def test_the_grid_shows_a_page_of_cards_with_lazy_thumbnails_and_inline_players(
    page: Any, seeded: Seeded
) -> None:
    from playwright.sync_api import expect

    cards = page.locator("[data-testid=card]")
    expect(cards).to_have_count(PAGE_SIZE)
    expect(page.get_by_test_id("total")).to_have_text(f"{seeded.total} results")
    # Newest first: the fox (two outputs) leads, with its output count.
    first = cards.first
    assert first.get_attribute("data-job") == seeded.fox_job
    expect(first.locator(".badge.count")).to_have_text("×2")
    images = page.locator("[data-testid=card] img")
    assert images.count() > 0
    assert set(images.evaluate_all("all => all.map(i => i.loading)")) == {"lazy"}
    # A thumbnail really loaded (made by Pillow and served as WebP).
    page.wait_for_function(
        "() => { const i = document.querySelector('[data-testid=card] img');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )


def test_scrolling_loads_the_next_pages_without_duplicates(page: Any, seeded: Seeded) -> None:
    from playwright.sync_api import expect

    cards = page.locator("[data-testid=card]")
    expect(cards).to_have_count(PAGE_SIZE)
    for _ in range(10):
        if page.locator("[data-testid=end]").count():
            break
        before = cards.count()
        page.get_by_test_id("sentinel").scroll_into_view_if_needed()
        page.wait_for_function(f"() => document.querySelectorAll('[data-testid=card]').length > {before}")
    expect(page.get_by_test_id("end")).to_have_count(1)
    ids = card_ids(page)
    assert len(ids) == len(set(ids)) == seeded.total
    # Every job state shows up in the grid, including failed and unknown.
    states = set(page.locator("[data-testid=card]").evaluate_all("all => all.map(c => c.className)"))
    for state in ("failed", "unknown", "pending", "running", "rejected", "abandoned"):
        assert any(f"state-{state}" in names for names in states), state
    # The video plays inline with metadata only, the song too; neither autoplays.
    video = page.locator(f"[data-job='{seeded.video_job}'] video")
    assert video.get_attribute("preload") == "metadata"
    assert video.evaluate("v => v.autoplay") is False
    audio = page.locator(f"[data-job='{seeded.audio_job}'] audio")
    assert audio.get_attribute("preload") == "metadata"


def test_filters_change_the_url_and_results_and_back_restores_them(page: Any, seeded: Seeded) -> None:
    from playwright.sync_api import expect

    cards = page.locator("[data-testid=card]")
    expect(cards).to_have_count(PAGE_SIZE)
    page.get_by_test_id("filter-state").select_option("failed")
    page.wait_for_url(re.compile(r"state=failed"))
    expect(cards).to_have_count(1)
    assert card_ids(page) == [seeded.by_state["failed"]]
    page.get_by_test_id("filter-media").select_option("video")
    page.wait_for_url(re.compile(r"media=video"))
    expect(page.get_by_test_id("total")).to_have_text("0 results")
    page.go_back()
    page.wait_for_url(re.compile(r"state=failed(?!.*media=video)"))
    expect(cards).to_have_count(1)
    assert page.get_by_test_id("filter-state").input_value() == "failed"
    page.go_back()
    expect(cards).to_have_count(PAGE_SIZE)
    assert "state=" not in page.url
    # The batch filter: exactly the matrix's six jobs.
    page.get_by_test_id("filter-batch").select_option(seeded.matrix_batch)
    page.wait_for_url(re.compile(r"batch="))
    expect(cards).to_have_count(6)
    assert set(card_ids(page)) == set(seeded.matrix_jobs)


def test_search_finds_a_prompt(page: Any, seeded: Seeded) -> None:
    from playwright.sync_api import expect

    search = page.get_by_test_id("search")
    search.fill("fox snow")
    page.wait_for_url(re.compile(r"q=fox\+snow"))
    expect(page.locator("[data-testid=card]")).to_have_count(1)
    assert card_ids(page) == [seeded.fox_job]
    search.fill("koi")
    search.press("Enter")
    page.wait_for_url(re.compile(r"q=koi"))
    expect(page.locator("[data-testid=card]")).to_have_count(2)
    assert page.locator("[data-testid=card] .prompt").all_inner_texts() == ["a koi pond in rain"] * 2


def test_the_detail_panel_shows_cost_and_timings(page: Any, seeded: Seeded, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page.locator(f"[data-job='{seeded.fox_job}'] .open").click()
    detail = page.get_by_test_id("detail")
    expect(detail).to_have_attribute("data-job", seeded.fox_job)
    expect(page.get_by_test_id("estimated")).to_have_text("4 credits ($0.02)")
    expect(page.get_by_test_id("charged")).to_have_text("4 credits ($0.02)")
    expect(page.get_by_test_id("cost-time")).to_have_text("6.5 s")
    timeline = page.get_by_test_id("timeline").locator("li")
    expect(timeline).to_have_count(5)
    assert [item.split("→")[-1].strip() for item in timeline.all_inner_texts()] == [
        "pending",
        "submitting",
        "running",
        "succeeded",
        "done",
    ]
    files = page.get_by_test_id("files")
    expect(files.locator("tbody tr")).to_have_count(2)
    expect(files).to_contain_text("96×64")
    assert "kie generate google/nano-banana --prompt 'a red fox in fresh snow'" in (
        page.get_by_test_id("copy-cli").text_content() or ""
    )
    assert "$KIE_API_KEY" in (detail.text_content() or "")
    page.screenshot(path=str(screenshots_dir(tmp_path) / "gallery-grid.png"))


def test_the_compare_slider_moves(page: Any, live: GalleryServer, seeded: Seeded) -> None:
    from playwright.sync_api import expect

    first, second = seeded.matrix_jobs[0], seeded.matrix_jobs[1]
    page.goto(f"{live.base_url}/compare?a={first}&b={second}")
    slider = page.get_by_test_id("compare-slider")
    top = page.get_by_test_id("compare-top")
    page.wait_for_function("() => document.querySelector('[data-testid=compare-top]').style.clipPath !== ''")
    assert top.evaluate("e => e.style.clipPath") == "inset(0px 50% 0px 0px)"
    slider.scroll_into_view_if_needed()
    box = slider.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.8, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    value = int(slider.input_value())
    assert 70 <= value <= 90
    expect(top).to_have_attribute("style", re.compile(rf"clip-path: inset\(0px {100 - value}% 0px 0px\)"))
    # Zoom and pan move both images together.
    stage = page.get_by_test_id("compare-stage")
    stage.hover()
    page.mouse.wheel(0, -300)
    transforms = stage.locator("img").evaluate_all("all => all.map(i => i.style.transform)")
    assert len(set(transforms)) == 1 and "scale(1." in transforms[0]


def test_picking_two_cards_opens_compare(page: Any, seeded: Seeded) -> None:
    from playwright.sync_api import expect

    with_images = page.locator("[data-testid=card]:has(img)")
    ids = list(with_images.evaluate_all("cards => cards.map(c => c.dataset.job)"))[:2]
    assert len(ids) == 2
    for job_id in ids:
        page.locator(f".compare-pick[value='{job_id}']").check()
    go = page.get_by_test_id("compare-go")
    expect(go).to_have_attribute("aria-disabled", "false")
    go.click()
    page.wait_for_url(re.compile(rf"/compare\?a={ids[0]}&b={ids[1]}"))
    expect(page.get_by_test_id("compare-stage")).to_have_count(1)


def test_the_matrix_shows_totals_and_picks_a_winner_per_row(
    page: Any, live: GalleryServer, seeded: Seeded, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page.goto(f"{live.base_url}/batches/{seeded.matrix_batch}/matrix")
    matrix = page.get_by_test_id("matrix")
    expect(matrix.locator("thead th")).to_have_text(["prompt", *MATRIX_MODELS, "row total"])
    expect(matrix.locator("tbody th")).to_have_text(list(MATRIX_PROMPTS))
    expect(matrix.get_by_test_id("cell")).to_have_count(6)
    # Rows: 5 + 4 credits and 2 × 10 s × line; columns: 3 × 5 and 3 × 4; all: 27.
    expect(matrix.get_by_test_id("row-total")).to_have_text(
        ["9 cr · 20.0 s", "9 cr · 40.0 s", "9 cr · 1 min 0 s"]
    )
    expect(matrix.get_by_test_id("column-total")).to_have_text(["15 cr · 1 min 0 s", "12 cr · 1 min 0 s"])
    expect(matrix.get_by_test_id("grand-total")).to_have_text("27 cr")
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=matrix] img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    page.screenshot(path=str(screenshots_dir(tmp_path) / "gallery-matrix.png"), full_page=True)
    first_row = page.locator("tbody tr").first
    first_row.get_by_test_id("pick").nth(0).click()
    expect(page.locator("tbody tr").first.locator("td.winner")).to_have_count(1)
    page.locator("tbody tr").first.get_by_test_id("pick").nth(1).click()
    expect(page.locator("tbody tr").first.locator("td.winner")).to_have_count(1)
    expect(page.locator("tbody tr").first.get_by_test_id("pick").nth(1)).to_have_text("★ winner")
    row_jobs = [job for job in seeded.ledger.jobs(batch_id=seeded.matrix_batch) if job["row_line"] == 1]
    from kie.gallery.marks import marks_of

    starred = {job["model"]: marks_of(seeded.ledger, job["id"])["starred"] for job in row_jobs}
    assert starred == {MATRIX_MODELS[0]: False, MATRIX_MODELS[1]: True}


def _ledger_shape(seeded: Seeded) -> tuple[int, int, int]:
    from sqlalchemy import func, select

    from kie.store.schema import batches, events, jobs

    with seeded.ledger.engine.connect() as c:
        return (
            c.execute(select(func.count()).select_from(jobs)).scalar_one(),
            c.execute(select(func.count()).select_from(batches)).scalar_one(),
            c.execute(select(func.count()).select_from(events)).scalar_one(),
        )


def test_a_rerun_over_budget_is_refused_and_the_ledger_is_unchanged(
    page: Any, live: GalleryServer, seeded: Seeded
) -> None:
    from playwright.sync_api import expect

    live.actions.max_credits = 3.0  # a re-run of the fox costs 4
    try:
        before = _ledger_shape(seeded)
        page.goto(f"{live.base_url}/jobs/{seeded.fox_job}")
        page.get_by_test_id("rerun").click()
        quote = page.get_by_test_id("quote")
        expect(quote).to_have_class(re.compile("refused"))
        expect(page.get_by_test_id("refusal")).to_contain_text(
            "more than the 3 left of the gallery's budget of 3 credits"
        )
        expect(page.get_by_test_id("confirm")).to_have_count(0)
        # A forged confirm (the page's own token, straight to the endpoint) is refused too.
        answer = page.request.post(
            f"{live.base_url}/jobs/{seeded.fox_job}/rerun",
            form={"kind": "rerun"},
            headers={"x-csrf-token": live.guard.csrf, "origin": live.base_url},
        )
        assert answer.status == 409
        assert _ledger_shape(seeded) == before
    finally:
        live.actions.max_credits = 100.0


def test_a_rerun_within_budget_creates_exactly_one_job_on_the_sandbox(
    page: Any, live: GalleryServer, seeded: Seeded
) -> None:
    from playwright.sync_api import expect

    jobs_before = {job["id"] for job in seeded.ledger.jobs()}
    page.goto(f"{live.base_url}/jobs/{seeded.fox_job}")
    expect(page.get_by_test_id("budget")).to_contain_text("of 100 credits")
    page.get_by_test_id("rerun").click()
    expect(page.get_by_test_id("quote-credits")).to_have_text("4 credits")
    page.get_by_test_id("confirm").click()
    started = page.get_by_test_id("started")
    expect(started).to_have_count(1)
    new_id = started.get_attribute("data-new-job")
    # The runner takes it to done on the sandbox; the panel follows it live.
    expect(page.locator(f"[data-testid=detail][data-job='{new_id}']")).to_have_attribute(
        "data-state", DONE, timeout=60_000
    )
    created = [job for job in seeded.ledger.jobs() if job["id"] not in jobs_before]
    assert [job["id"] for job in created] == [new_id]
    job = created[0]
    assert (job["parent_job_id"], job["relation"], job["model"], job["state"]) == (
        seeded.fox_job,
        "rerun",
        IMAGE_MODEL,
        DONE,
    )
    assert job["input"]["prompt"] == "a red fox in fresh snow"
    assert len(seeded.ledger.files_of(new_id)) >= 1
    expect(page.get_by_test_id("budget")).to_contain_text("4 of 100 credits")


def test_posts_without_the_csrf_token_or_from_a_foreign_host_get_403(
    page: Any, live: GalleryServer, seeded: Seeded
) -> None:
    target = f"{live.base_url}/jobs/{seeded.fox_job}/marks"
    no_token = page.request.post(target, form={"action": "star"}, headers={"origin": live.base_url})
    assert no_token.status == 403
    foreign = page.request.post(
        target,
        form={"action": "star"},
        headers={"x-csrf-token": live.guard.csrf, "origin": live.base_url, "host": "evil.test"},
    )
    assert foreign.status == 403
    from kie.gallery.marks import marks_of

    assert marks_of(seeded.ledger, seeded.fox_job)["starred"] is False
