"""`kie mcp`: an MCP server that lets AI agents use kie's catalogue, ledger and budget safely.

Needs the optional `mcp` extra (`pip install 'kie[mcp]'`). `kie.mcp.server.build_server(app)` builds
the server over a `kie.mcp.app.KieApp`; `kie mcp` on the command line runs it over stdio or HTTP.
"""
