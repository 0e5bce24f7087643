// The official MCP TypeScript SDK (npm @modelcontextprotocol/sdk, the SDK whose client speaks
// tasks: the 2025-11-25 experimental form) running task-augmented tool calls against erlmcp
// over Streamable HTTP. The tools are command backends (the typical long-running task).
//
// Usage: node ts_tasks_client.mjs NODE_MODULES URL
// Exits non-zero on the first failure.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [nodeModules, url] = process.argv.slice(2);
const sdk = (p) => import(pathToFileURL(join(nodeModules, '@modelcontextprotocol/sdk/dist/esm', p)).href);
const { Client } = await sdk('client/index.js');
const { StreamableHTTPClientTransport } = await sdk('client/streamableHttp.js');

const client = new Client({ name: 'erlmcp-ts-tasks', version: '1.0.0' }, { capabilities: {} });
await client.connect(new StreamableHTTPClientTransport(new URL(url)));
const caps = client.getServerCapabilities();
assert.ok(caps?.tasks?.requests?.tools?.call, `server must offer task-augmented tools/call: ${JSON.stringify(caps)}`);

// Listing teaches the client which tools run as tasks (execution.taskSupport).
const { tools } = await client.listTools();
const slow = tools.find((t) => t.name === 'slow_ok');
assert.equal(slow?.execution?.taskSupport, 'optional', JSON.stringify(slow));

// A task-augmented call: created, polled with tasks/get, fetched with tasks/result.
const seen = [];
let result;
let taskId;
for await (const m of client.experimental.tasks.callToolStream(
  { name: 'slow_ok', arguments: { label: 'ts-sdk' } },
  undefined,
  { task: { ttl: 60000 } },
)) {
  seen.push(m.type);
  if (m.type === 'taskCreated') taskId = m.task.taskId;
  if (m.type === 'error') throw m.error;
  if (m.type === 'result') result = m.result;
}
assert.equal(seen[0], 'taskCreated', `stream: ${seen}`);
assert.ok(seen.includes('taskStatus'), `stream: ${seen}`);
assert.equal(seen.at(-1), 'result', `stream: ${seen}`);
assert.match(result.content[0].text, /finished/, JSON.stringify(result));
const done = await client.experimental.tasks.getTask(taskId);
assert.equal(done.status, 'completed', JSON.stringify(done));

// A long one, cancelled; it is listed with the first.
const created = await client.request(
  { method: 'tools/call', params: { name: 'slow_long', arguments: {}, task: { ttl: 60000 } } },
  (await sdk('types.js')).CreateTaskResultSchema,
);
const longId = created.task.taskId;
assert.equal(created.task.status, 'working', JSON.stringify(created));
const cancelled = await client.experimental.tasks.cancelTask(longId);
assert.equal(cancelled.status, 'cancelled', JSON.stringify(cancelled));
const listed = await client.experimental.tasks.listTasks();
const ids = listed.tasks.map((t) => t.taskId);
assert.ok(ids.includes(taskId) && ids.includes(longId), `tasks/list: ${ids}`);

await client.close();
console.log(`PASS TypeScript SDK task-augmented calls (${seen.join(' -> ')})`);
