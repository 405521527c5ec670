"""The 4o Image (GPT-Image-1) API: `POST /api/v1/gpt4o-image/generate`, `GET …/record-info`, and its own
`POST …/download-url` (kie-api.md §4.1, §5, Appendix B).

The body is flat (`prompt`, `filesUrl`, `size`, `nVariants`, `maskUrl`, `enableFallback`,
`fallbackModel`, …) and sent as given; no field is fixed by the model id.

Status: `successFlag` 0 generating, 1 success, 2 failed (3 is read as failed too: it is Flux's and Veo's
"generation failed" and no 4o document gives it another meaning); `status` GENERATING, SUCCESS,
CREATE_TASK_FAILED, GENERATE_FAILED; `progress` is a string "0.00"…"1.00", reported here in percent
(0-100) like Market's Sora progress so one scale holds for every family.

Result URLs are read from every documented place:
- record-info `data.response.resultUrls` (OpenAPI) and `data.response.result_urls` (quickstart), with
  `response` as an object or a JSON string;
- callback `data.info.result_urls` (callback page, §5) and `data.info.resultUrls`.

Callback codes: 200 success; 400 (content policy), 451 (filesUrl download failed), 500 (server error)
are failures whose `msg` is the reason; the failure body has `info: null`.

`download-url` takes `{taskId, url}` and answers a presigned link valid 20 minutes; its 422 reasons are
"record is null", "Temporarily supports records within 14 days", "record result data is blank" and
"record status is not success". `download_url_request`/`fresh_link` build it; kie's own download flow
keeps using `common/download-url`, which accepts the same files.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from kie.protocol.common import parse_download_url
from kie.protocol.envelope import ApiRequest, Envelope, require_ok
from kie.protocol.families.legacy import COMMON_FLAGS, LegacyImageFamily
from kie.protocol.flows import Flow, Send
from kie.protocol.task import TaskState, as_float, loads_maybe, mapping_of, pick, url_list

MODEL_ID = "gpt-4o-image"
DOWNLOAD_URL_PATH = "/api/v1/gpt4o-image/download-url"
URL_KEYS = ("resultUrls", "result_urls")


def _urls(container: Mapping[str, Any]) -> tuple[tuple[str, ...], dict[str, Any]]:
    urls = url_list(loads_maybe(pick(container, *URL_KEYS)))
    extra = {k: v for k, v in container.items() if k not in URL_KEYS}
    return urls, extra


class Gpt4oImageFamily(LegacyImageFamily):
    api = "gpt4o-image"
    status_path = "/api/v1/gpt4o-image/record-info"
    flags: ClassVar[Mapping[int, TaskState]] = COMMON_FLAGS

    def model_of(self, param: Mapping[str, Any]) -> str | None:
        return MODEL_ID

    def results(self, data: Mapping[str, Any]) -> tuple[tuple[str, ...], dict[str, Any]]:
        return _urls(mapping_of(data.get("response")))

    def callback_results(self, info: Mapping[str, Any]) -> tuple[tuple[str, ...], dict[str, Any]]:
        return _urls(info)

    def progress_of(self, data: Mapping[str, Any]) -> float | None:
        """The documented fraction ("0.48") as a percentage; values above 1 are already percentages."""
        fraction = as_float(data.get("progress"))
        if fraction is None:
            return None
        return round(fraction * 100, 2) if fraction <= 1 else fraction


def download_url_request(task_id: str, url: str) -> ApiRequest:
    """A fresh 20-minute link for one result of a 4o task (reading it twice is harmless)."""
    return ApiRequest(
        "POST", DOWNLOAD_URL_PATH, json={"taskId": task_id, "url": url}, label="gpt4o-image download-url"
    )


def fresh_link(task_id: str, url: str) -> Flow:
    """Flow: the presigned link for `url` of task `task_id`; 422 reasons raise `ValidationError`."""
    env: Envelope = yield Send(download_url_request(task_id, url))
    return parse_download_url(require_ok(env, task_id=task_id))


__all__ = [
    "DOWNLOAD_URL_PATH",
    "Gpt4oImageFamily",
    "download_url_request",
    "fresh_link",
    "parse_download_url",
]
