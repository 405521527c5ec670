"""The Flux Kontext API: `POST /api/v1/flux/kontext/generate`, `GET /api/v1/flux/kontext/record-info`
(kie-api.md §4.2, §5, Appendix B).

One create path serves both models and both modes: the body's `model` (`flux-kontext-pro` or
`flux-kontext-max`, pro when absent) comes from the catalogue's `endpoint.fixed`, and giving
`inputImage` turns generation into editing.

Status: `successFlag` 0 GENERATING, 1 SUCCESS, 2 CREATE_TASK_FAILED, 3 GENERATE_FAILED (also as
strings, and the `status` words when a record spells them out). A record-info envelope with code 501
("generation failed", listed in the record-info code enum) is a failed task, like Market's.

Result URLs, from every documented place:
- record-info `data.response.resultImageUrl` (also `result_image_url`), `response` as an object or a
  JSON string;
- callback `data.info.resultImageUrl`.
`originImageUrl` (the upstream copy, valid 10 minutes) is kept in `extra["originImageUrl"]` and never
downloaded: `resultImageUrl` is Kie's 14-day copy of the same image, so it is the one result.

Callback: `{"code":200,"msg":"BFL image generated successfully.","data":{"taskId","info":{…}}}`;
failures 400 (prompt flagged), 500 (internal, retry), 501 (generation failed) carry no `info`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from kie.protocol.families.legacy import COMMON_FLAGS, LegacyImageFamily
from kie.protocol.task import TaskState, mapping_of, text_at

DEFAULT_MODEL = "flux-kontext-pro"
RESULT_KEYS = ("resultImageUrl", "result_image_url")
ORIGIN_KEYS = ("originImageUrl", "origin_image_url")


def _images(container: Mapping[str, Any]) -> tuple[tuple[str, ...], dict[str, Any]]:
    result = text_at(container, *RESULT_KEYS)
    origin = text_at(container, *ORIGIN_KEYS)
    return ((result,) if result else ()), ({"originImageUrl": origin} if origin else {})


class FluxKontextFamily(LegacyImageFamily):
    api = "flux-kontext"
    status_path = "/api/v1/flux/kontext/record-info"
    flags: ClassVar[Mapping[int, TaskState]] = COMMON_FLAGS
    failed_codes: ClassVar[Mapping[int, str]] = {501: "Image generation task failed"}
    fixed_fields: ClassVar[frozenset[str]] = frozenset({"model"})

    def model_of(self, param: Mapping[str, Any]) -> str | None:
        """The model the task ran on; the API's default when the body named none."""
        return text_at(param, "model") or (DEFAULT_MODEL if param else None)

    def results(self, data: Mapping[str, Any]) -> tuple[tuple[str, ...], dict[str, Any]]:
        return _images(mapping_of(data.get("response")))

    def callback_results(self, info: Mapping[str, Any]) -> tuple[tuple[str, ...], dict[str, Any]]:
        return _images(info)


__all__ = ["DEFAULT_MODEL", "FluxKontextFamily"]
