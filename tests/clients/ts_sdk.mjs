// The TypeScript SDK (@tinybirdco/sdk) against Roost: ingest through the Events API, then read an
// endpoint and run SQL. Expects TB_HOST, TB_TOKEN, ROOST_NODE_MODULES (where `make clients`
// installed the npm clients), a data source `events` (country String, amount Int32) and an
// endpoint pipe `totals` with a `country` parameter. Prints one JSON object for the Rust test.
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const sdk = await import(
  pathToFileURL(join(process.env.ROOST_NODE_MODULES, "@tinybirdco/sdk/dist/index.js")).href
);
const api = sdk.createTinybirdApi({ baseUrl: process.env.TB_HOST, token: process.env.TB_TOKEN });

const seen = {};
seen.ingest_one = await api.ingest("events", { country: "IT", amount: 5 });
const batch = Array.from({ length: 50 }, (_, i) => ({ country: "IT", amount: i }));
seen.ingest_batch = await api.ingestBatch("events", batch);
const endpoint = await api.query("totals", { country: "IT" });
seen.endpoint_data = endpoint.data;
seen.endpoint_rows = endpoint.rows;
const sql = await api.sql("SELECT count() AS c FROM events FORMAT JSON");
seen.sql_count = Number(sql.data[0].c);
try {
  await api.query("no_such_pipe");
  seen.missing = "no error";
} catch (error) {
  seen.missing = { name: error.name, status: error.statusCode ?? error.status };
}
console.log(JSON.stringify(seen));
