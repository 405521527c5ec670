"""The installed `kie mcp` entry point: over stdio it lists its tools to the SDK's stdio client (this
catches import-time mistakes that in-process tests cannot), over HTTP it keeps to loopback's Host and
Origin, and without the SDK it ends with one sentence saying how to install it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx
from mcp import Client, StdioServerParameters

KIE = Path(sys.executable).with_name("kie")


def environment(tmp_path: Path) -> dict[str, str]:
    return {"KIE_HOME": str(tmp_path / "home"), "KIE_CONFIG": str(tmp_path / "none.toml")}


async def test_kie_mcp_sandbox_serves_its_tools_over_stdio(tmp_path: Path) -> None:
    server = StdioServerParameters(command=str(KIE), args=["mcp", "--sandbox"], env=environment(tmp_path))
    async with Client(server) as client:
        tools = await client.list_tools()
        balance = await client.call_tool("get_balance", {})
    assert len(tools.tools) == 11 and {"generate", "wait_for_jobs", "get_jobs"} <= {
        t.name for t in tools.tools
    }
    assert balance.structured_content is not None and balance.structured_content["credits"] > 0


def test_without_the_sdk_kie_mcp_says_how_to_install_it(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker" / "mcp"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('no mcp here', name='mcp')\n")
    env = {**os.environ, **environment(tmp_path), "PYTHONPATH": str(blocker.parent)}
    done = subprocess.run([str(KIE), "mcp", "--sandbox"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "pip install 'kie[mcp]'" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def test_kie_mcp_http_serves_loopback_and_refuses_foreign_hosts(tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [str(KIE), "mcp", "--http", "--port", str(port), "--sandbox"],
        env={**os.environ, **environment(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        end = time.monotonic() + 30
        while not listening(port):
            assert server.poll() is None and time.monotonic() < end, "kie mcp --http did not start"
            await anyio.sleep(0.05)
        async with Client(f"http://127.0.0.1:{port}/mcp") as client:
            tools = await client.list_tools()
        assert len(tools.tools) == 11
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        async with httpx.AsyncClient() as http:
            rebound = await http.post(
                f"http://127.0.0.1:{port}/mcp", json=body, headers={"Host": f"attacker.example:{port}"}
            )
            foreign = await http.post(
                f"http://127.0.0.1:{port}/mcp", json=body, headers={"Origin": "http://attacker.example"}
            )
        assert rebound.status_code == 421 and foreign.status_code == 403
    finally:
        server.terminate()
        server.wait(timeout=30)
