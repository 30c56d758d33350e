// mockingbird's TinybirdGenerator (the library; it has no CLI package) streaming events to Roost's
// Events API. Expects TB_HOST, TB_TOKEN, ROOST_NODE_MODULES, a data source `mock_events`
// (id String, n Int32), and EVENTS / EPS (defaults 10000 at 1000 per second).
import { createRequire } from "node:module";
import { join } from "node:path";

const require = createRequire(join(process.env.ROOST_NODE_MODULES, "package.json"));
const { TinybirdGenerator } = require("@tinybirdco/mockingbird");

const limit = Number(process.env.EVENTS ?? 10000);
const eps = Number(process.env.EPS ?? 1000);
const generator = new TinybirdGenerator({
  endpoint: process.env.TB_HOST,
  datasource: "mock_events",
  token: process.env.TB_TOKEN,
  eps,
  limit,
  logs: false,
  schema: {
    id: { type: "string.uuid" },
    n: { type: "number.int", params: [{ min: 0, max: 1000 }] },
  },
});
let sent = 0;
const started = Date.now();
await generator.generate((rows) => {
  sent += rows.length;
});
console.log(JSON.stringify({ sent, seconds: (Date.now() - started) / 1000 }));
