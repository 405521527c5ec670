"""Creates whose caller commits intent at departure (`on_depart`): a refused departure leaves the pacer
able to send the next ones, and such a create is tried once, so a job is never held `submitting`
through a retry backoff."""

from __future__ import annotations

import pytest

from kie import catalog
from kie.client import AsyncKie
from kie.errors import RateLimitError
from kie.protocol import flows
from kie.protocol.polling import Pacer
from kie.sandbox.server import SandboxServer
from tests.conftest import FAST_RETRY, client_settings, poll_policy

SPEC = "bytedance/seedream-v4-text-to-image"


class Refused(Exception):
    pass


def refuse() -> None:
    raise Refused


@pytest.mark.parametrize("sandbox", [{"rate_limit": None}], indirect=True)
async def test_a_departure_refused_by_its_hook_does_not_stall_the_window(sandbox: SandboxServer) -> None:
    async with AsyncKie(
        settings=client_settings(sandbox), poll=poll_policy(), retry=FAST_RETRY, create_interval=None
    ) as client:
        client.config.create_pacer = Pacer(0.002, window=(5, 0.01))
        spec = catalog.get(SPEC)
        with pytest.raises(Refused):
            await client.run(flows.submit(spec, {"prompt": "never sent"}, None, on_depart=refuse))
        for n in range(12):  # more than one window's worth after the refused one
            await client.run(flows.submit(spec, {"prompt": f"p{n}"}, None, on_depart=lambda: None))
    assert len(sandbox.state.tasks) == 12


async def test_a_create_with_a_departure_hook_is_tried_once(sandbox: SandboxServer) -> None:
    sandbox.state.inject("createTask", "429", times=3)
    departures = 0

    def depart() -> None:
        nonlocal departures
        departures += 1

    async with AsyncKie(
        settings=client_settings(sandbox), poll=poll_policy(), retry=FAST_RETRY, create_interval=None
    ) as client:
        with pytest.raises(RateLimitError):
            await client.run(flows.submit(catalog.get(SPEC), {"prompt": "x"}, None, on_depart=depart))
        # Without a hook the client itself waits out the 429s, as before.
        created = await client.run(flows.submit(catalog.get(SPEC), {"prompt": "y"}, None))
    assert departures == 1 and sandbox.state.requests_for("createTask") == 4 and created.task_id
