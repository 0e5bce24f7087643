// The TypeScript side of bench/compare.sh: the official MCP TypeScript SDK's McpServer over
// its Streamable HTTP transport on node's own http server, one transport per session as the
// SDK's examples do it, with one `echo` tool (the message back as text). Benchmark only; binds
// loopback.
//
// Usage: NODE_PATH=<tsmcp node_modules> node ts_echo_server.mjs PORT NODE_MODULES_DIR
import { createServer } from "node:http";
import { randomUUID } from "node:crypto";
import { pathToFileURL } from "node:url";
import path from "node:path";

const [port, modules] = [Number(process.argv[2]), process.argv[3]];
const load = (p) => import(pathToFileURL(path.join(modules, p)).href);
const { McpServer } = await load("@modelcontextprotocol/sdk/dist/esm/server/mcp.js");
const { StreamableHTTPServerTransport } = await load(
  "@modelcontextprotocol/sdk/dist/esm/server/streamableHttp.js",
);
const { z } = await load("zod/index.js");

function newServer() {
  const s = new McpServer({ name: "ts-echo", version: "1.0.0" });
  s.registerTool(
    "echo",
    { description: "Echoes back the message", inputSchema: { message: z.string() } },
    async ({ message }) => ({ content: [{ type: "text", text: message }] }),
  );
  return s;
}

const transports = new Map();

async function readJson(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return chunks.length ? JSON.parse(Buffer.concat(chunks).toString("utf8")) : undefined;
}

createServer(async (req, res) => {
  try {
    const sid = req.headers["mcp-session-id"];
    if (sid) {
      const t = transports.get(sid);
      if (!t) {
        res.writeHead(404).end();
        return;
      }
      await t.handleRequest(req, res, req.method === "POST" ? await readJson(req) : undefined);
      return;
    }
    if (req.method !== "POST") {
      res.writeHead(405).end();
      return;
    }
    const body = await readJson(req);
    const t = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => transports.set(id, t),
    });
    t.onclose = () => t.sessionId && transports.delete(t.sessionId);
    await newServer().connect(t);
    await t.handleRequest(req, res, body);
  } catch (e) {
    if (!res.headersSent) res.writeHead(500).end(String(e));
  }
}).listen(port, "127.0.0.1", () => console.error(`ts-echo listening on http://127.0.0.1:${port}/mcp`));
