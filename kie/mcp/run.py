"""Running the server on a transport: stdio for an MCP client's config, or Streamable HTTP on loopback.

Over HTTP, loopback is not a trust boundary (DNS rebinding): only the Host and Origin headers of this
very port on 127.0.0.1, localhost or [::1] are accepted, the rules the gallery follows too.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

HOST = "127.0.0.1"


def http_security(port: int) -> TransportSecuritySettings:
    hosts = [f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts,
        allowed_origins=[f"http://{host}" for host in hosts],
    )


def serve(server: MCPServer[Any], *, http: bool, port: int) -> None:
    if http:
        server.run("streamable-http", host=HOST, port=port, transport_security=http_security(port))
    else:
        server.run("stdio")
