"""4o Image through the public API, exactly like a Market model, against the sandbox over real HTTP."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest
from PIL import Image

import kie
from kie.client import AsyncKie, Kie
from kie.client._base import sync_transport
from kie.protocol.families.gpt4o_image import Gpt4oImageFamily, fresh_link
from kie.protocol.task import TaskStatus
from kie.sandbox.server import SandboxServer
from tests.receiver import CallbackReceiver

MODEL = "gpt-4o-image"
INPUT = {"prompt": "a poster that says HELLO", "size": "3:2"}
RECORD_KEYS = {
    "taskId",
    "paramJson",
    "completeTime",
    "response",
    "successFlag",
    "status",
    "errorCode",
    "errorMessage",
    "createTime",
    "progress",
}
family = Gpt4oImageFamily()
SLOW = [{"time_scale": 1.0}]  # a 45-second model stays running for the whole test


def api(sandbox: SandboxServer) -> httpx.Client:
    return httpx.Client(
        base_url=sandbox.url,
        headers={"Authorization": f"Bearer {sandbox.api_key}"},
        timeout=5,
        transport=sync_transport(),
    )


def same_outcome(a: TaskStatus, b: TaskStatus) -> None:
    assert (a.task_id, a.state, a.result_urls, a.fail_code, a.fail_msg) == (
        b.task_id,
        b.state,
        b.result_urls,
        b.fail_code,
        b.fail_msg,
    )


def test_generate_saves_one_file_per_variant(client: Kie, sandbox: SandboxServer, tmp_path: Path) -> None:
    gen = client.generate(MODEL, {**INPUT, "nVariants": 2}, output_dir=tmp_path)
    assert [r.path for r in gen.results] == [tmp_path / f"{gen.task_id}-{n}.png" for n in (1, 2)]
    for result in gen.results:
        assert hashlib.sha256(result.read()).hexdigest() == result.sha256
        with Image.open(result.path) as image:
            assert image.format == "PNG" and round(image.width / image.height, 2) == 1.5  # size 3:2
    assert gen.status.state is kie.TaskState.SUCCEEDED and gen.status.progress == 100.0
    assert gen.estimate.credits == 7 and sandbox.state.spent == 7
    assert sandbox.state.requests_for("gpt4o-image/generate") == 1
    (task,) = sandbox.state.tasks.values()
    assert task.request == {**INPUT, "nVariants": 2}  # flat body, no `input` wrapper


def test_local_reference_image_is_uploaded_into_files_url(client: Kie, tmp_path: Path) -> None:
    picture = tmp_path / "ref.png"
    Image.new("RGB", (32, 32), "red").save(picture)
    gen = client.generate(MODEL, {"filesUrl": [str(picture)], "size": "1:1"}, output_dir=tmp_path / "out")
    assert gen.status.input is not None and gen.status.input["filesUrl"][0].startswith("http")
    assert gen.paths[0].exists()


def test_local_and_kie_side_validation(client: Kie, sandbox: SandboxServer) -> None:
    with pytest.raises(kie.ValidationError, match="size"):
        client.generate(MODEL, {"prompt": "x"})  # size is required: caught before anything is sent
    assert sandbox.state.request_log == []
    with pytest.raises(kie.ValidationError) as caught:
        client.generate(MODEL, {"size": "1:1"})  # neither prompt nor filesUrl: only Kie knows the rule
    assert caught.value.code == 422 and "prompt" in str(caught.value)
    assert sandbox.state.tasks == {}


def test_failed_generation_raises_and_costs_nothing(client: Kie, sandbox: SandboxServer) -> None:
    sandbox.state.inject(
        "generation", "fail_generation", fail_code="400", fail_msg="Your content was flagged"
    )
    with pytest.raises(kie.TaskFailedError) as caught:
        client.generate(MODEL, INPUT)
    assert (caught.value.fail_code, caught.value.fail_msg) == ("400", "Your content was flagged")
    assert caught.value.task_id in sandbox.state.tasks and sandbox.state.spent == 0


def test_callback_matches_the_record(client: Kie, tmp_path: Path) -> None:
    with CallbackReceiver() as receiver:
        gen = client.generate(MODEL, INPUT, output_dir=tmp_path, callback_url=receiver.url)
        (hit,) = receiver.wait_for(1)
    assert hit.body == {
        "code": 200,
        "msg": "success",
        "data": {"taskId": gen.task_id, "info": {"result_urls": list(gen.status.result_urls)}},
    }
    same_outcome(family.parse_callback(hit.body), client.get(gen.task_id, MODEL))


@pytest.mark.parametrize(("injected", "sent"), [("451", 451), ("400", 400), ("422", 500)])
def test_failure_callback_matches_the_record(
    client: Kie, sandbox: SandboxServer, injected: str, sent: int
) -> None:
    sandbox.state.inject("generation", "fail_generation", fail_code=injected, fail_msg="Download Failed")
    with CallbackReceiver() as receiver:
        sub = client.submit(MODEL, INPUT, callback_url=receiver.url)
        (hit,) = receiver.wait_for(1)
    assert hit.body == {"code": sent, "msg": "Download Failed", "data": {"taskId": sub.task_id, "info": None}}
    status = client.get(sub.task_id, MODEL)
    assert status.state is kie.TaskState.FAILED and status.fail_code == str(sent)
    same_outcome(family.parse_callback(hit.body), status)


def test_own_download_url_endpoint(client: Kie, sandbox: SandboxServer, tmp_path: Path) -> None:
    gen = client.generate(MODEL, INPUT, output_dir=tmp_path)
    url = gen.status.result_urls[0]
    link: str = client.run(fresh_link(gen.task_id, url))
    assert "/dl/" in link and "X-Amz-Expires=1200" in link
    assert httpx.get(link).content == gen.results[0].read()
    with pytest.raises(kie.ValidationError, match="url is wrong"):
        client.run(fresh_link(gen.task_id, url + "x"))
    with pytest.raises(kie.ValidationError, match="record is null"):
        client.run(fresh_link("0" * 32, url))
    assert sandbox.state.requests_for("gpt4o-image/download-url") == 3


@pytest.mark.parametrize("sandbox", SLOW, indirect=True)
def test_download_url_refuses_unfinished_tasks(client: Kie, sandbox: SandboxServer) -> None:
    sub = client.submit(MODEL, INPUT)
    with api(sandbox) as http:
        answer = http.post(
            "/api/v1/gpt4o-image/download-url", json={"taskId": sub.task_id, "url": "u"}
        ).json()
        assert answer == {"code": 422, "msg": "record status is not success", "data": None}
        missing = http.post("/api/v1/gpt4o-image/download-url", json={"taskId": sub.task_id}).json()
        assert missing["code"] == 422


def test_expired_result_link_is_refreshed(client: Kie, sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.state.inject("results", "expire_urls")
    gen = client.generate(MODEL, INPUT, output_dir=tmp_path)
    assert gen.paths[0].stat().st_size > 0 and sandbox.state.requests_for("download-url") == 1


def test_record_info_wire_shape_when_done(client: Kie, sandbox: SandboxServer, tmp_path: Path) -> None:
    gen = client.generate(MODEL, {**INPUT, "nVariants": 4}, output_dir=tmp_path)
    with api(sandbox) as http:
        body = http.get("/api/v1/gpt4o-image/record-info", params={"taskId": gen.task_id}).json()
        unknown = http.get("/api/v1/gpt4o-image/record-info", params={"taskId": "f" * 32}).json()
    assert (body["code"], body["msg"]) == (200, "success")
    data = body["data"]
    assert set(data) == RECORD_KEYS
    assert (data["successFlag"], data["status"], data["progress"]) == (1, "SUCCESS", "1.00")
    assert data["response"] == {"resultUrls": list(gen.status.result_urls)} and len(gen.paths) == 4
    assert data["errorCode"] is None and data["errorMessage"] == ""
    assert isinstance(data["createTime"], int) and data["completeTime"] >= data["createTime"]
    assert json.loads(data["paramJson"]) == {**INPUT, "nVariants": 4}
    assert unknown == {"code": 422, "msg": "record is null", "data": None}


@pytest.mark.parametrize("sandbox", SLOW, indirect=True)
def test_record_info_wire_shape_while_running(client: Kie, sandbox: SandboxServer) -> None:
    sub = client.submit(MODEL, INPUT)
    with api(sandbox) as http:
        data = http.get("/api/v1/gpt4o-image/record-info", params={"taskId": sub.task_id}).json()["data"]
    assert (data["successFlag"], data["status"], data["response"], data["completeTime"]) == (
        0,
        "GENERATING",
        None,
        None,
    )
    assert 0.0 <= float(data["progress"]) < 1.0
    assert client.get(sub.task_id, MODEL).state is kie.TaskState.RUNNING


def test_failed_record_wire_shape(client: Kie, sandbox: SandboxServer) -> None:
    sandbox.state.inject("generation", "fail_generation", fail_code="500", fail_msg="GPT 4O failed")
    with pytest.raises(kie.TaskFailedError) as caught:
        client.generate(MODEL, INPUT)
    with api(sandbox) as http:
        data = http.get("/api/v1/gpt4o-image/record-info", params={"taskId": caught.value.task_id}).json()[
            "data"
        ]
    assert (data["successFlag"], data["status"], data["errorCode"], data["errorMessage"]) == (
        2,
        "GENERATE_FAILED",
        500,
        "GPT 4O failed",
    )
    assert data["response"] is None


async def test_async_generate(aclient: AsyncKie, tmp_path: Path) -> None:
    gen = await aclient.generate(MODEL, INPUT, output_dir=tmp_path)
    assert gen.results[0].path.exists() and gen.status.model == MODEL
