"""The Python side of bench/compare.sh: the official MCP Python SDK's MCPServer over Streamable
HTTP with one `echo` tool (the message back as text), as its docs serve it: sessions for the
2025 revisions, stateless for 2026-07-28. Benchmark only; binds loopback.

Usage: python python_echo_server.py PORT
"""

import sys

import uvicorn
from mcp.server.mcpserver import MCPServer

server = MCPServer("py-echo")


@server.tool()
def echo(message: str) -> str:
    """Echoes back the message."""
    return message


def main() -> None:
    port = int(sys.argv[1])
    app = server.streamable_http_app(host="127.0.0.1")
    # No access log: the benchmark measures the SDK, not a log line per request.
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
