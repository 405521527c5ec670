"""Replays against the sandbox: every real accepted request of kie-api.md Appendix C, and the seeds' own
curl/python examples that target real endpoints (the seeds' wrong endpoints and headers fail as Kie would).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from kie.client._base import sync_transport
from kie.sandbox.server import SandboxServer

APPENDIX_C = json.loads((Path(__file__).parents[1] / "catalog" / "appendix_c.json").read_text())["requests"]
# grok extend/upscale refer to a grok task id; like Kie, the sandbox accepts any id at create.


def coerced(values: dict) -> dict:
    return {k: (int(v) if isinstance(v, str) and v.isdigit() else v) for k, v in values.items()}


def api(sandbox: SandboxServer, headers: dict[str, str] | None = None) -> httpx.Client:
    auth = headers if headers is not None else {"Authorization": f"Bearer {sandbox.api_key}"}
    return httpx.Client(base_url=sandbox.url, headers=auth, timeout=10, transport=sync_transport())


@pytest.mark.parametrize("row", APPENDIX_C, ids=[r["model"] for r in APPENDIX_C])
def test_appendix_c_requests_are_accepted_and_finish(sandbox: SandboxServer, row: dict) -> None:
    with api(sandbox) as http:
        created = http.post("/api/v1/jobs/createTask", json=row["body"])
        body = created.json()
        assert created.status_code == 200 and body["code"] == 200, body
        assert body["data"]["taskId"] == body["data"]["recordId"]
        task_id = body["data"]["taskId"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            record = http.get("/api/v1/jobs/recordInfo", params={"taskId": task_id}).json()["data"]
            if record["state"] == "success":
                break
            time.sleep(0.01)
    # echoed key for key, numeric strings as numbers (`"duration": "6"` came back as 6)
    assert json.loads(json.loads(record["param"])["input"]) == coerced(row["body"]["input"])
    urls = json.loads(record["resultJson"])["resultUrls"]
    assert urls and all(u.startswith(sandbox.url) for u in urls)


SEED_MARKET_EXAMPLES = [  # seed 004, "Code Examples" bodies, verbatim apart from the callback host
    {
        "model": "wan/2-2-a14b-text-to-video-turbo",
        "callBackUrl": "https://your-domain.com/api/callback",
        "input": {
            "prompt": "Drone shot, fast traversal, starting inside a cracked, frosty circular pipe.",
            "resolution": "720p",
            "aspect_ratio": "16:9",
            "enable_prompt_expansion": False,
            "seed": 0,
            "acceleration": "none",
        },
    },
    {
        "model": "wan/2-6-text-to-video",
        "callBackUrl": "https://your-domain.com/api/callback",
        "input": {
            "prompt": "In a hyperrealistic ASMR video, a hand uses a knitted knife to slowly slice a burger.",
            "duration": "5",
            "resolution": "1080p",
        },
    },
    {
        "model": "bytedance/v1-lite-text-to-video",
        "callBackUrl": "https://your-domain.com/api/callback",
        "input": {
            "prompt": "Wide-angle shot: A serene sailing boat gently sways in the harbor at dawn.",
            "aspect_ratio": "16:9",
            "resolution": "720p",
            "duration": "5",
            "camera_fixed": False,
            "enable_safety_checker": True,
        },
    },
    {
        "model": "bytedance/v1-pro-image-to-video",
        "callBackUrl": "https://your-domain.com/api/callback",
        "input": {
            "prompt": "A golden retriever dashing through shallow surf at the beach.",
            "image_url": "https://file.aiquickdraw.com/custom-page/akr/section-images/1755179021328w1nhip18.webp",
            "resolution": "720p",
            "duration": "5",
            "camera_fixed": False,
            "seed": -1,
            "enable_safety_checker": True,
        },
    },
]


@pytest.mark.parametrize("body", SEED_MARKET_EXAMPLES, ids=[b["model"] for b in SEED_MARKET_EXAMPLES])
def test_seed_market_examples_work(sandbox: SandboxServer, body: dict) -> None:
    with api(sandbox) as http:
        answer = http.post("/api/v1/jobs/createTask", json=body).json()
    assert answer["code"] == 200 and answer["data"]["taskId"]


def test_seed_kling_example_is_rejected_for_its_out_of_range_cfg_scale(sandbox: SandboxServer) -> None:
    """Seed 004's Kling example sends cfg_scale 7.5; the documented range is 0-1, so it is a paid 422."""
    body = {
        "model": "kling/v2-1-master-text-to-video",
        "input": {
            "prompt": "A majestic eagle soaring through a mountain landscape.",
            "duration": "5",
            "aspect_ratio": "16:9",
            "negative_prompt": "blurry, low quality",
            "cfg_scale": 7.5,
        },
    }
    with api(sandbox) as http:
        answer = http.post("/api/v1/jobs/createTask", json=body).json()
    assert answer["code"] == 422 and "cfg_scale" in answer["msg"] and "0 to 1" in answer["msg"]


SEED_LEGACY_EXAMPLES = [  # seed 004 curl/python examples against real product endpoints
    (
        "/api/v1/veo/generate",
        {
            "prompt": "A cute cat playing in a garden on a sunny day, high quality",
            "model": "veo3",
            "aspectRatio": "16:9",
            "callBackUrl": "https://your-website.com/callback",
        },
    ),
    (
        "/api/v1/runway/generate",
        {
            "prompt": "A fluffy orange cat dancing energetically in a colorful room",
            "duration": 5,
            "quality": "720p",
            "aspectRatio": "16:9",
            "waterMark": "",
            "callBackUrl": "https://your-website.com/callback",
        },
    ),
    (
        "/api/v1/gpt4o-image/generate",
        {"prompt": "A serene mountain landscape at sunset", "size": "1:1", "nVariants": 1},
    ),
    (
        "/api/v1/flux/kontext/generate",
        {
            "prompt": "A serene mountain landscape at sunset with a lake",
            "aspectRatio": "16:9",
            "model": "flux-kontext-pro",
        },
    ),
]


@pytest.mark.parametrize(("path", "body"), SEED_LEGACY_EXAMPLES, ids=[p for p, _ in SEED_LEGACY_EXAMPLES])
def test_seed_product_examples_work(sandbox: SandboxServer, path: str, body: dict) -> None:
    with api(sandbox) as http:
        answer = http.post(path, json=body).json()
    assert answer["code"] == 200 and answer["data"]["taskId"], answer


def test_seed_mistakes_fail_as_kie_would(sandbox: SandboxServer) -> None:
    """Seed 002 authenticates with X-API-KEY; seed 001 posts to /api/v1/seedream/generate. Neither works."""
    with api(sandbox, headers={"X-API-KEY": sandbox.api_key}) as http:
        wrong_header = http.post("/api/v1/gpt4o-image/generate", json={"prompt": "sunset over mountains"})
    assert wrong_header.json()["code"] == 401
    with api(sandbox) as http:
        missing = http.post("/api/v1/seedream/generate", json={"prompt": "A beautiful sunset"})
    assert missing.status_code == 404


def test_drop_fault_cuts_the_connection_without_creating(sandbox: SandboxServer) -> None:
    sandbox.state.inject("createTask", "drop")
    # The peer sees either an empty close or a reset, depending on timing: both are a dropped connection.
    with api(sandbox) as http, pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        http.post("/api/v1/jobs/createTask", json={"model": "nano-banana-pro", "input": {"prompt": "x"}})
    assert sandbox.state.tasks == {}


# -- timing relations and per-model states of the recorded traffic, at two time scales ----------------
GENERATING = {
    "seedream/5-lite-text-to-image",
    "seedream/5-lite-image-to-image",
    "gpt-image-2-text-to-image",
    "kling-3.0/video",
}


def recorded_cost(row: dict) -> int | None:
    head = row["outcome"].split(" / ", 1)[0]
    return int(head) if head.isdigit() else None


@pytest.mark.parametrize(
    "sandbox",
    [
        {"time_scale": scale, "duration_jitter": 0.0, "rate_limit": None, "status_rate_limit": None}
        for scale in (0.01, 0.002)
    ],
    indirect=True,
    ids=["x0.01", "x0.002"],
)
def test_recorded_traffic_timing_relations_and_states(sandbox: SandboxServer) -> None:
    """Every Appendix C row, replayed at once: each poll keeps the recorded relations (`createTime` ms
    and fixed, `costTime`/`completeTime` null and `resultJson` "" until done, then `costTime` the whole
    seconds between `createTime` and `completeTime`, at least the recorded duration) and each model
    shows its one recorded state until `success`."""
    seen: dict[str, set[str]] = {}
    created: dict[str, int] = {}
    done: dict[str, dict] = {}
    rows = {}
    with api(sandbox) as http:
        for row in APPENDIX_C:
            task_id = http.post("/api/v1/jobs/createTask", json=row["body"]).json()["data"]["taskId"]
            rows[task_id] = row
            first = http.get("/api/v1/jobs/recordInfo", params={"taskId": task_id}).json()["data"]
            seen[task_id] = {first["state"]}
            created[task_id] = first["createTime"]
        deadline = time.monotonic() + 60
        while len(done) < len(rows) and time.monotonic() < deadline:
            for task_id in rows.keys() - done.keys():
                record = http.get("/api/v1/jobs/recordInfo", params={"taskId": task_id}).json()["data"]
                assert isinstance(record["createTime"], int) and record["createTime"] == created[task_id]
                if record["state"] == "success":
                    done[task_id] = record
                    continue
                seen[task_id].add(record["state"])
                assert record["costTime"] is None and record["completeTime"] is None
                assert record["resultJson"] == "" and "updateTime" not in record
            time.sleep(0.005)
    assert len(done) == len(rows)
    for task_id, record in done.items():
        row = rows[task_id]
        expected = "generating" if row["model"] in GENERATING else "waiting"
        assert seen[task_id] - {"success"} == {expected}, row["model"]
        assert record["costTime"] == (record["completeTime"] - record["createTime"]) // 1000
        recorded = recorded_cost(row)
        assert recorded is None or record["costTime"] >= recorded, row["model"]
