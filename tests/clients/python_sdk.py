"""The Tinybird Python SDK (tinybird-python-sdk) and verdin against Roost, as a user would use them.

Expects TB_HOST and TB_TOKEN, a data source `events` (country String, amount Int32) and an endpoint
pipe `totals` (sum of amount per country, with a `country` parameter), both created by the caller.
Prints one JSON object with what each client saw; the Rust test asserts on it.
"""
import json
import os

from tb.api import API
from tb.datasource import Datasource
from verdin.client import Client

host = os.environ["TB_HOST"]
token = os.environ["TB_TOKEN"]
seen = {}

# tinybird-python-sdk: buffered appends to the Events API, flushed when the block ends.
with Datasource("events", token, api_url=host) as ds:
    for i in range(100):
        ds << {"country": "ES", "amount": i}
    ds << {"country": "FR", "amount": 7}

# Its raw API client on the endpoint.
response = API(token, host).get("/pipes/totals.json?country=ES")
seen["sdk_es_total"] = response.json()["data"][0]["total"]

# verdin: events with wait=true, then the endpoint and a query through the SQL API.
client = Client(token, api=host)
sent = client.datasource("events").send_events(
    [{"country": "FR", "amount": 10}, {"country": "FR", "amount": 20}], wait=True
)
seen["verdin_successful_rows"] = sent.successful_rows
seen["verdin_quarantined_rows"] = sent.quarantined_rows
result = client.pipe("totals").query({"country": "FR"})
seen["verdin_fr_rows"] = result.data
seen["verdin_fr_meta"] = [list(column) for column in result.meta]
seen["verdin_sql_count"] = client.sql("SELECT count() AS c FROM events").json().data[0]["c"]

print(json.dumps(seen))
