"""The guard over real HTTP: Host allow-list, token → cookie, Origin and CSRF on writes, text/plain
refused, CSP on every answer, files only by hash."""

from __future__ import annotations

import hashlib

import httpx

from kie.gallery.marks import marks_of
from kie.gallery.server import GalleryServer
from tests.gallery.conftest import signed_in, writes
from tests.gallery.seed import Seeded


def test_the_printed_token_becomes_a_strict_cookie_and_leaves_the_url(live: GalleryServer) -> None:
    http = httpx.Client(base_url=live.base_url, follow_redirects=False)
    assert http.get("/").status_code == 401
    answer = http.get(f"/?token={live.guard.token}&state=done")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/?state=done"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and live.guard.token not in cookie
    assert http.get("/?state=done").status_code == 200
    assert httpx.get(f"{live.base_url}/?token=wrong-token").status_code == 403


def test_a_foreign_host_header_is_refused_even_with_the_cookie(live: GalleryServer) -> None:
    http = signed_in(live)
    for host in ("evil.test", f"evil.test:{live.port}", "127.0.0.1:1", "localhost"):
        assert http.get("/", headers={"host": host}).status_code == 403, host
    assert http.get("/", headers={"host": f"localhost:{live.port}"}).status_code == 200


def test_writes_need_the_origin_the_csrf_token_and_a_form_body(live: GalleryServer, seeded: Seeded) -> None:
    http = signed_in(live)
    target = f"/jobs/{seeded.fox_job}/marks"
    good = writes(live)
    assert http.post(target, data={"action": "star"}).status_code == 403
    assert (
        http.post(target, data={"action": "star"}, headers={**good, "x-csrf-token": "guess"}).status_code
        == 403
    )
    assert (
        http.post(target, data={"action": "star"}, headers={**good, "origin": "http://evil.test"}).status_code
        == 403
    )
    no_origin = {"x-csrf-token": live.guard.csrf}
    assert http.post(target, data={"action": "star"}, headers=no_origin).status_code == 403
    plain = http.post(target, content=b"action=star", headers={**good, "content-type": "text/plain"})
    assert plain.status_code == 415
    assert marks_of(seeded.ledger, seeded.fox_job)["starred"] is False
    same_site = {"x-csrf-token": live.guard.csrf, "sec-fetch-site": "same-origin"}
    assert http.post(target, data={"action": "star"}, headers=same_site).status_code == 200
    assert marks_of(seeded.ledger, seeded.fox_job)["starred"] is True
    assert http.post(target, data={"action": "unstar"}, headers=good).status_code == 200
    assert marks_of(seeded.ledger, seeded.fox_job)["starred"] is False


def test_every_answer_carries_a_strict_csp_and_no_inline_script(live: GalleryServer, seeded: Seeded) -> None:
    http = signed_in(live)
    for path in ("/", f"/jobs/{seeded.fox_job}", "/spend", f"/batches/{seeded.matrix_batch}/matrix", "/nope"):
        answer = http.get(path)
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert "unsafe-inline" not in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
        body = answer.text
        assert "<script>" not in body and " on" + "click=" not in body and "javascript:" not in body
    assert live.guard.token not in http.get("/").text


def test_files_are_served_by_hash_only_with_ranges(live: GalleryServer, seeded: Seeded) -> None:
    http = signed_in(live)
    (first,) = [f for f in seeded.ledger.files_of(seeded.video_job)]
    whole = http.get(f"/files/{first['sha256']}")
    assert whole.status_code == 200 and hashlib.sha256(whole.content).hexdigest() == first["sha256"]
    assert whole.headers["content-type"] == "video/mp4"
    part = http.get(f"/files/{first['sha256']}", headers={"range": "bytes=0-9"})
    assert part.status_code == 206 and part.content == whole.content[:10]
    assert (
        http.get(f"/files/{first['sha256']}", headers={"if-none-match": f'"{first["sha256"]}"'}).status_code
        == 304
    )
    for bad in ("../../etc/passwd", "%2e%2e%2fledger.db", "0" * 64, first["sha256"][:-1]):
        assert http.get(f"/files/{bad}").status_code == 404, bad


def test_the_prompt_is_escaped_not_rendered(live: GalleryServer, seeded: Seeded) -> None:
    from kie.store import NewJob

    (job_id,) = seeded.ledger.add_jobs(
        None, [NewJob("google/nano-banana", {"prompt": "<img src=x onerror=alert(1)>"})]
    )
    http = signed_in(live)
    body = http.get(f"/jobs/{job_id}").text
    assert "<img src=x onerror" not in body and "&lt;img src=x onerror=alert(1)&gt;" in body
    seeded.total += 1
