"""Sandbox API families: one module each, registering its routes and shaping its callbacks.

A family class takes `(state, engine)`, and offers `api`, `routes()` and `callback_bodies(task)`. Modules
are listed here and imported when the sandbox starts; a family whose module is absent is simply not
served, so the sandbox still runs while one is being written.
"""

from __future__ import annotations

import importlib
from typing import Any

from starlette.routing import Route

from kie.sandbox.engine import Engine
from kie.sandbox.state import SandboxState

SANDBOX_FAMILIES: dict[str, str] = {
    "market": "kie.sandbox.families.market:MarketSandbox",
    "gpt4o-image": "kie.sandbox.families.gpt4o_image:Gpt4oImageSandbox",
    "flux-kontext": "kie.sandbox.families.flux_kontext:FluxKontextSandbox",
    "midjourney": "kie.sandbox.families.midjourney:MidjourneySandbox",
    "veo": "kie.sandbox.families.veo:VeoSandbox",
    "runway": "kie.sandbox.families.runway:RunwaySandbox",
    "aleph": "kie.sandbox.families.aleph:AlephSandbox",
    "luma": "kie.sandbox.families.luma:LumaSandbox",
    "suno": "kie.sandbox.families.suno:SunoSandbox",
    # Not an API family: fixtures of Kie's public sources (pricing feed, docs index, sitemap, model
    # paths) for `kie models check`, mounted the same way so the app needs no change.
    "sources": "kie.sandbox.sources:SourcesSandbox",
}


def load_families(state: SandboxState, engine: Engine) -> tuple[dict[str, Any], list[Route]]:
    families: dict[str, Any] = {}
    routes: list[Route] = []
    for api, target in SANDBOX_FAMILIES.items():
        module_name, _, class_name = target.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        family = cls(state, engine)
        families[api] = family
        routes.extend(family.routes())
    return families, routes
