"""A real client nobody here wrote: the official MCP Python SDK (PyPI `mcp`) against erlmcp.

Usage: python_client.py URL ERLMCP_BIN CONFIG
Runs, over Streamable HTTP (URL) and stdio (ERLMCP_BIN serve --stdio --config CONFIG), in both
eras (the SDK's `auto` mode, which probes server/discover and goes modern, and `legacy`, which
does the initialize handshake): list tools, call echo, read a resource, get a prompt.
Exits non-zero on the first failure.
"""

import asyncio
import json
import sys

from mcp import Client, StdioServerParameters


async def exercise(label, server, mode):
    async with Client(server, mode=mode, raise_exceptions=True) as c:
        tools = await c.list_tools()
        names = [t.name for t in tools.tools]
        assert "echo" in names and "cluster_status" in names, f"{label}: tools {names}"
        r = await c.call_tool("echo", {"message": "hello from the python sdk"})
        assert not r.is_error, f"{label}: echo failed: {r}"
        assert r.content[0].text == "hello from the python sdk", f"{label}: echo returned {r.content}"
        bad = await c.call_tool("echo", {})
        assert bad.is_error, f"{label}: echo without message should be a tool error"
        res = await c.read_resource("erlmcp://node/status")
        status = json.loads(res.contents[0].text)
        assert status["node"].startswith("erlmcp@"), f"{label}: status {status}"
        p = await c.get_prompt("test_prompt_with_arguments", {"arg1": "alpha", "arg2": "beta"})
        text = p.messages[0].content.text
        assert "alpha" in text and "beta" in text, f"{label}: prompt {text}"
        print(f"ok  {label}: protocol {c.protocol_version}, {len(names)} tools")
        return c.protocol_version


async def main():
    url, binary, config = sys.argv[1], sys.argv[2], sys.argv[3]
    stdio = StdioServerParameters(command=binary, args=["serve", "--stdio", "--config", config])
    seen = {}
    for label, server, mode in [
        ("http auto", url, "auto"),
        ("http legacy", url, "legacy"),
        ("stdio auto", stdio, "auto"),
        ("stdio legacy", stdio, "legacy"),
    ]:
        seen[label] = await exercise(label, server, mode)
    assert seen["http auto"] == "2026-07-28", f"auto mode should go modern, got {seen['http auto']}"
    assert seen["http legacy"] != "2026-07-28", f"legacy mode negotiated {seen['http legacy']}"
    print("python sdk client: all passed")


asyncio.run(main())
