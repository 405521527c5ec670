"""One module per API family; each turns a model's input into a request and any answer into a
`TaskStatus`. The clients look a family up by the catalogue's `endpoint.api` and never branch on it.

Families are imported lazily from `FAMILY_MODULES`, so adding one is adding a module and one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, Protocol, cast

from kie.catalog.spec import ModelSpec
from kie.errors import ValidationError
from kie.protocol.envelope import ApiRequest, Envelope
from kie.protocol.families.base import Created
from kie.protocol.task import TaskStatus

__all__ = ["FAMILY_MODULES", "Created", "Family", "family_for", "family_named"]


class Family(Protocol):
    api: str

    def create_request(
        self, spec: ModelSpec, values: Mapping[str, Any], callback_url: str | None
    ) -> ApiRequest: ...

    def parse_created(self, spec: ModelSpec, data: Any) -> Created:
        """`data` of a successful create envelope; raise `ValueError` if it carries no task id."""
        ...

    def status_request(self, spec: ModelSpec | None, task_id: str) -> ApiRequest: ...

    def not_visible(self, env: Envelope) -> bool:
        """True for answers meaning "no such task yet" right after a create (kept polling briefly)."""
        ...

    def answers(self) -> frozenset[int]:
        """Envelope codes the status endpoint uses as answers (handed to `parse_status`), not errors."""
        ...

    def parse_status(self, env: Envelope, task_id: str) -> TaskStatus: ...

    def parse_callback(self, body: Mapping[str, Any]) -> TaskStatus: ...


# api name -> "module:Class". Modules are imported on first use.
FAMILY_MODULES: dict[str, str] = {
    "market": "kie.protocol.families.market:MarketFamily",
    "gpt4o-image": "kie.protocol.families.gpt4o_image:Gpt4oImageFamily",
    "flux-kontext": "kie.protocol.families.flux_kontext:FluxKontextFamily",
    "midjourney": "kie.protocol.families.midjourney:MidjourneyFamily",
    "veo": "kie.protocol.families.veo:VeoFamily",
    "runway": "kie.protocol.families.runway:RunwayFamily",
    "aleph": "kie.protocol.families.aleph:AlephFamily",
    "luma": "kie.protocol.families.luma:LumaFamily",
    "suno": "kie.protocol.families.suno:SunoFamily",
}
_LOADED: dict[str, Family] = {}


def family_named(api: str) -> Family:
    family = _LOADED.get(api)
    if family is not None:
        return family
    target = FAMILY_MODULES.get(api)
    module_name, _, class_name = (target or "").partition(":")
    try:
        family = cast(Family, getattr(importlib.import_module(module_name), class_name)())
    except (ImportError, AttributeError, ValueError):
        raise ValidationError(
            f"kie cannot talk to the {api!r} API family yet; choose a Market model "
            "(`kie models`) or update kie."
        ) from None
    _LOADED[api] = family
    return family


def family_for(spec: ModelSpec | None) -> Family:
    return family_named(spec.endpoint.api if spec is not None else "market")
