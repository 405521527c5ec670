"""Uploads (§6), download links (§7) and result media served by the sandbox."""

from __future__ import annotations

import base64
import io
import json
import re
import time

import httpx
import mutagen.mp3
import mutagen.mp4
import pytest
from PIL import Image

from kie.client._base import sync_transport
from kie.sandbox.media import mp4_from_jpegs, render
from kie.sandbox.server import SandboxServer


def api(sandbox: SandboxServer) -> httpx.Client:
    return httpx.Client(
        base_url=sandbox.url,
        headers={"Authorization": f"Bearer {sandbox.api_key}"},
        timeout=5,
        transport=sync_transport(),
    )


def finished(http: httpx.Client, model: str, values: dict) -> list[str]:
    task_id = http.post("/api/v1/jobs/createTask", json={"model": model, "input": values}).json()["data"][
        "taskId"
    ]
    for _ in range(2000):
        data = http.get("/api/v1/jobs/recordInfo", params={"taskId": task_id}).json()["data"]
        if data["state"] == "success":
            return json.loads(data["resultJson"])["resultUrls"]
        time.sleep(0.005)
    raise AssertionError("task did not finish")


def test_stream_upload_real_shape_and_generated_name(sandbox: SandboxServer) -> None:
    with api(sandbox) as http:
        response = http.post(
            "/api/file-stream-upload",
            files={"file": ("cat1.jpg", b"\xff\xd8\xffdata", "image/jpeg")},
            data={"uploadPath": "images/test-uploads"},
        )
        body = response.json()
        assert body["success"] is True and body["code"] == 200 and body["msg"] == "File uploaded successfully"
        data = body["data"]
        assert data["success"] is True and re.fullmatch(r"\d{13}-[a-z0-9]{10,11}\.jpg", data["fileName"])
        assert data["filePath"] == f"kieai/{sandbox.config.user_id}/images/test-uploads/{data['fileName']}"
        assert data["fileSize"] == 7 and data["mimeType"] == "image/jpeg" and data["uploadedAt"].endswith("Z")
        assert "fileUrl" not in data  # the quickstart's field does not exist in reality
        served = http.get(data["downloadUrl"])
    assert served.content == b"\xff\xd8\xffdata"


def test_base64_upload_with_name_and_data_url(sandbox: SandboxServer) -> None:
    payload = "data:text/plain;base64," + base64.b64encode(b"hello").decode()
    with api(sandbox) as http:
        body = http.post(
            "/api/file-base64-upload",
            json={"base64Data": payload, "uploadPath": "docs", "fileName": "test.txt"},
        ).json()
        assert body["data"]["fileName"] == "test.txt"  # used verbatim
        assert http.get(body["data"]["downloadUrl"]).content == b"hello"
        bad = http.post("/api/file-base64-upload", json={"base64Data": "%%%", "uploadPath": "docs"}).json()
        no_path = http.post("/api/file-base64-upload", json={"base64Data": "aGk="}).json()
    assert bad == {"success": False, "code": 400, "msg": "Base64 decoding failed: Invalid Base64 format"}
    assert no_path == {"success": False, "code": 400, "msg": "Missing required parameter: uploadPath"}


def test_url_upload_fetches_loopback_only(sandbox: SandboxServer) -> None:
    with api(sandbox) as http:
        first = http.post(
            "/api/file-base64-upload",
            json={"base64Data": base64.b64encode(b"abc").decode(), "uploadPath": "a", "fileName": "a.bin"},
        ).json()
        copied = http.post(
            "/api/file-url-upload", json={"fileUrl": first["data"]["downloadUrl"], "uploadPath": "b"}
        ).json()
        external = http.post(
            "/api/file-url-upload", json={"fileUrl": "https://example.com/x.png", "uploadPath": "b"}
        ).json()
        assert http.get(copied["data"]["downloadUrl"]).content == b"abc"
    assert external["success"] is False and external["code"] == 400


def test_upload_auth_uses_the_upload_hosts_envelope(sandbox: SandboxServer) -> None:
    with httpx.Client(base_url=sandbox.url) as http:
        body = http.post("/api/file-base64-upload", json={"base64Data": "aGk=", "uploadPath": "x"}).json()
    assert body == {"success": False, "code": 401, "msg": "Authentication failed: Invalid API Key"}


def test_images_follow_aspect_ratio_resolution_and_prompt(sandbox: SandboxServer) -> None:
    with api(sandbox) as http:
        wide = http.get(finished(http, "nano-banana-pro", {"prompt": "a fox", "aspect_ratio": "16:9"})[0])
        tall = http.get(finished(http, "nano-banana-pro", {"prompt": "a fox", "aspect_ratio": "9:16"})[0])
        other = http.get(finished(http, "nano-banana-pro", {"prompt": "an owl", "aspect_ratio": "16:9"})[0])
    w = Image.open(io.BytesIO(wide.content))
    t = Image.open(io.BytesIO(tall.content))
    assert w.format == "PNG" and wide.headers["content-type"] == "image/png"
    assert w.width / w.height == pytest.approx(16 / 9, rel=0.02) and t.height / t.width == pytest.approx(
        16 / 9, rel=0.02
    )
    assert wide.content != other.content


def test_full_resolution_class_without_cap() -> None:
    data, content_type = render(
        "nano-banana-pro", "image", "png", {"prompt": "x", "resolution": "2K", "aspect_ratio": "1:1"}, 0
    )
    assert Image.open(io.BytesIO(data)).size == (2048, 2048) and content_type == "image/png"


def test_video_and_audio_results_are_valid_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    video, vtype = render(
        "kling-3.0/video", "video", "mp4", {"prompt": "waves", "duration": "5", "aspect_ratio": "16:9"}, 0
    )
    path = tmp_path / "v.mp4"
    path.write_bytes(video)
    info = mutagen.mp4.MP4(path).info
    assert vtype == "video/mp4" and info.length == pytest.approx(5.0, abs=0.3)
    audio, atype = render("elevenlabs/text-to-speech-turbo-2-5", "audio", "mp3", {"text": "hello"}, 0)
    path = tmp_path / "a.mp3"
    path.write_bytes(audio)
    mp3 = mutagen.mp3.MP3(path)
    assert atype == "audio/mpeg" and mp3.info.sample_rate == 44100 and mp3.info.length > 1


def test_mp4_frames_are_decodable_jpegs() -> None:
    frame = io.BytesIO()
    Image.new("RGB", (32, 16), (200, 10, 10)).save(frame, "JPEG")
    data = mp4_from_jpegs([frame.getvalue()] * 3, 32, 16, 4)
    start = data.index(b"mdat") + 4
    assert Image.open(io.BytesIO(data[start:])).size == (32, 16)


@pytest.mark.parametrize(
    "sandbox", [{"url_ttl": 20.0, "download_link_ttl": 40.0, "time_scale": 0.01}], indirect=True
)
def test_result_links_expire_and_download_url_refreshes_them(sandbox: SandboxServer) -> None:
    with api(sandbox) as http:
        url = finished(http, "nano-banana-pro", {"prompt": "x"})[0]
        assert http.get(url).status_code == 200
        time.sleep(0.25)
        assert http.get(url).status_code == 404  # the direct link expired
        fresh = http.post("/api/v1/common/download-url", json={"url": url}).json()
        assert fresh["code"] == 200 and fresh["data"] != url
        assert http.get(fresh["data"]).status_code == 200
        time.sleep(0.45)
        assert http.get(fresh["data"]).status_code == 404  # and the temporary link expires too
        external = http.post("/api/v1/common/download-url", json={"url": "https://example.com/a.png"}).json()
    assert external == {"code": 422, "msg": "url is wrong", "data": None}
