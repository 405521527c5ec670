"""One module per API family; each turns a model's input into a request and any answer into a
`TaskStatus`. The clients look a family up by the catalogue's `endpoint.api` and never branch on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from kie.catalog.spec import ModelSpec
from kie.protocol.envelope import ApiRequest, Envelope
from kie.protocol.families.market import MarketFamily
from kie.protocol.task import TaskStatus


class Family(Protocol):
    api: str

    def create_request(
        self, spec: ModelSpec, values: Mapping[str, Any], callback_url: str | None
    ) -> ApiRequest: ...

    def parse_created(self, data: Any) -> str: ...

    def status_request(self, spec: ModelSpec | None, task_id: str) -> ApiRequest: ...

    def not_visible(self, env: Envelope) -> bool: ...

    def parse_status(self, env: Envelope, task_id: str) -> TaskStatus: ...

    def parse_callback(self, body: Mapping[str, Any]) -> TaskStatus: ...


_FAMILIES: dict[str, Family] = {"market": MarketFamily()}


def register(family: Family) -> None:
    _FAMILIES[family.api] = family


def family_for(spec: ModelSpec | None) -> Family:
    api = spec.endpoint.api if spec is not None else "market"
    try:
        return _FAMILIES[api]
    except KeyError:
        raise NotImplementedError(
            f"The {api!r} API family is not supported yet; use a Market model instead."
        ) from None
