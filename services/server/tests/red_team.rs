//! Attempts to get out of the workspace through everything a caller can send: `/v0/sql`, the SQL
//! of pipe nodes (published or read by the published node), `q=` over an endpoint, and template
//! parameters. `roost local` holds one workspace, so "another workspace" is the engine's own
//! naming: the workspace database `w_<id>` and the tables `t_...` behind data sources, which users
//! must never be able to name, plus the engine's `system`, `information_schema` and `default`
//! databases, table functions that reach files, URLs and other servers, settings, multiple
//! statements and output files.
//!
//! Every attempt must end in a JSON 4xx (never a 5xx, never rows), or, where a value is meant to be
//! data, come back as that data verbatim and nothing more. The server must keep answering.

use std::time::Duration;

use reqwest::{Client, RequestBuilder, Response, StatusCode};
use roost_testkit::RoostLocal;
use roost_testkit::http::{content_type, json};
use serde_json::{Value, json};

/// What is in the workspace's data source `x`: a reader who gets these without naming `x` escaped
/// the name resolution.
const INSIDE: &str = "inside-marker";
/// What `/etc/passwd` starts with.
const PASSWD: &str = "root:x:0:0";

struct Api {
    roost: RoostLocal,
    http: Client,
    token: String,
    /// The workspace's engine database, `w_...`.
    database: String,
    /// The engine table behind `x`, `t_...`.
    table: String,
}

impl Api {
    /// A fresh server with the data source `x` (a Int32, s String) holding two rows.
    async fn start() -> Api {
        let roost = RoostLocal::start(env!("CARGO_BIN_EXE_roost"))
            .await
            .expect("roost local starts");
        let token = roost.tokens.workspace_admin.clone();
        let http = Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let mut api = Api {
            roost,
            http,
            token,
            database: String::new(),
            table: String::new(),
        };
        let created = api
            .post("/v0/datasources")
            .form(&[
                ("name", "x"),
                ("schema", "`a` Int32 `json:$.a`, `s` String `json:$.s`"),
                ("engine_sorting_key", "a"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            created.status(),
            StatusCode::OK,
            "{}",
            created.text().await.unwrap()
        );
        let appended = api
            .post("/v0/events")
            .query(&[("name", "x"), ("wait", "true")])
            .body(format!(
                "{{\"a\":1,\"s\":\"{INSIDE}-1\"}}\n{{\"a\":2,\"s\":\"{INSIDE}-2\"}}\n"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(
            appended.status(),
            StatusCode::OK,
            "{}",
            appended.text().await.unwrap()
        );
        let workspace: Value = api
            .get("/v0/workspace")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let workspace_id = workspace["id"]
            .as_str()
            .expect("workspace id")
            .replace('-', "");
        api.database = format!("w_{workspace_id}");
        let data_source: Value = api
            .get("/v0/datasources/x")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        api.table = data_source["id"]
            .as_str()
            .expect("data source id")
            .to_string();
        assert!(api.table.starts_with("t_"), "{data_source}");
        // The internal names are real: the engine table exists under them (checked from the
        // outside of the API is impossible, so check that the API's own reading works).
        assert_eq!(
            api.sql_rows("SELECT count() AS n FROM x").await,
            [json!({"n": 2})]
        );
        api
    }

    fn url(&self, path: &str) -> String {
        self.roost.url(path)
    }

    fn get(&self, path: &str) -> RequestBuilder {
        self.http.get(self.url(path)).bearer_auth(&self.token)
    }

    fn post(&self, path: &str) -> RequestBuilder {
        self.http.post(self.url(path)).bearer_auth(&self.token)
    }

    /// `{db}` and `{table}` in `template` replaced with the internal names.
    fn fill(&self, template: &str) -> String {
        template
            .replace("{db}", &self.database)
            .replace("{table}", &self.table)
    }

    async fn sql_rows(&self, sql: &str) -> Vec<Value> {
        let response = self
            .get("/v0/sql")
            .query(&[("q", sql)])
            .send()
            .await
            .unwrap();
        let (status, body) = json(response).await;
        assert_eq!(status, StatusCode::OK, "{sql}: {body}");
        body["data"].as_array().unwrap().clone()
    }

    /// Creates (or replaces) the pipe `name` with these nodes, the last one published.
    async fn pipe(&self, name: &str, nodes: &[(&str, &str)]) -> (StatusCode, Value) {
        let count = nodes.len();
        let nodes: Vec<Value> = nodes
            .iter()
            .enumerate()
            .map(|(i, (node, sql))| {
                let kind = if i + 1 == count {
                    "endpoint"
                } else {
                    "standard"
                };
                json!({ "name": node, "sql": sql, "type": kind })
            })
            .collect();
        let response = self
            .post("/v0/pipes")
            .query(&[("force", "true")])
            .json(&json!({ "name": name, "nodes": nodes }))
            .send()
            .await
            .unwrap();
        json(response).await
    }

    /// Creates a pipe that must be accepted.
    async fn pipe_ok(&self, name: &str, nodes: &[(&str, &str)]) {
        let (status, body) = self.pipe(name, nodes).await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
    }

    /// An endpoint call with its parameters as a form body (values of any size).
    async fn call(&self, pipe: &str, params: &[(&str, &str)]) -> Response {
        self.post(&format!("/v0/pipes/{pipe}.json"))
            .form(params)
            .send()
            .await
            .unwrap()
    }

    /// Asserts that the server answers and still reads its own data correctly.
    async fn assert_alive(&self) {
        let health = self.http.get(self.url("/health")).send().await.unwrap();
        assert_eq!(health.status(), StatusCode::OK);
        assert_eq!(
            self.sql_rows("SELECT a, s FROM x ORDER BY a").await,
            [
                json!({"a": 1, "s": format!("{INSIDE}-1")}),
                json!({"a": 2, "s": format!("{INSIDE}-2")})
            ]
        );
    }
}

/// Asserts a refusal: a 4xx JSON error that carries no rows and nothing read from anywhere.
async fn refused(response: Response, attempt: &str) -> String {
    let status = response.status();
    let kind = content_type(&response);
    let text = response.text().await.unwrap();
    assert!(
        status.is_client_error(),
        "{attempt}\n  was not refused: {status} {text:.800}"
    );
    assert!(
        kind.starts_with("application/json"),
        "{attempt}\n  {status} answered {kind:?}: {text:.500}"
    );
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{attempt}: invalid JSON ({e}): {text:.500}"));
    assert!(body["error"].is_string(), "{attempt}: no error in {body}");
    assert!(
        body.get("data").is_none(),
        "{attempt}: rows in a refusal: {body}"
    );
    assert!(
        !text.contains(INSIDE) && !text.contains(PASSWD),
        "{attempt}: data in a refusal: {text:.500}"
    );
    body["error"].as_str().unwrap().to_string()
}

/// Asserts that an escaping case came back as exactly one row whose `v` is `expected`.
async fn verbatim(response: Response, attempt: &str, expected: &Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{attempt:.200}: {text:.800}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["rows"], json!(1), "{attempt:.200}: {text:.800}");
    let row = body["data"][0].as_object().unwrap();
    assert_eq!(row.len(), 1, "{attempt:.200}: extra columns in {text:.500}");
    assert!(
        &row["v"] == expected,
        "{attempt:.200}: came back as {:.300}, not verbatim",
        row["v"]
    );
}

/// Asserts either a verbatim echo or a 4xx JSON refusal (for values over the engine's limits).
async fn verbatim_or_refused(response: Response, attempt: &str, expected: &Value) {
    if response.status().is_success() {
        verbatim(response, attempt, expected).await;
    } else {
        refused(response, attempt).await;
    }
}

/// SQL that reaches outside the workspace, or could, in every spelling we could think of.
/// `{db}` is the workspace's engine database, `{table}` the engine table behind `x`.
const ESCAPES: &[&str] = &[
    // The engine's internal names of this very workspace's data.
    "SELECT * FROM {db}.{table}",
    "SELECT * FROM `{db}`.`{table}`",
    "SELECT * FROM \"{db}\".\"{table}\"",
    "SELECT * FROM {db} . {table}",
    "SELECT * FROM {db}/**/./**/{table}",
    "SELECT * FROM {table}",
    "SELECT * FROM `{table}`",
    "SELECT * FROM \"{table}\"",
    "SELECT * FROM `{db}.{table}`",
    "SELECT * FROM {db}.`{table}_quarantine`",
    "SELECT * FROM x JOIN {db}.{table} AS t USING a",
    "SELECT * FROM x WHERE a IN (SELECT a FROM {db}.{table})",
    "SELECT * FROM x WHERE a IN {db}.{table}",
    // Other databases.
    "SELECT * FROM system.tables",
    "SELECT * FROM system.one",
    "SELECT * FROM `system`.`one`",
    "SELECT * FROM \"system\".\"one\"",
    "SELECT * FROM system.`one`",
    "SELECT * FROM SYSTEM.ONE",
    "SELECT * FROM system.databases",
    "SELECT * FROM INFORMATION_SCHEMA.TABLES",
    "SELECT * FROM information_schema.tables",
    "SELECT * FROM default.x",
    "SELECT * FROM `default`.`x`",
    // Comment tricks around a forbidden table.
    "SELECT * FROM x /* , */ , system.one",
    "SELECT * FROM x -- comment\n, system.one",
    "SELECT * FROM x # comment\n, system.one",
    "SELECT * FROM x #! comment\n, system.one",
    "SELECT * FROM /* x */ system.one",
    "SELECT * FROM x /* unterminated",
    "SELECT * FROM x /* nested /* */ , system.one */",
    // Set operations and subqueries.
    "SELECT a FROM x UNION ALL SELECT toInt32(dummy) FROM system.one",
    "SELECT s FROM x UNION DISTINCT SELECT name FROM system.tables",
    "(SELECT s FROM x) UNION ALL (SELECT name FROM system.databases)",
    "SELECT a FROM x EXCEPT SELECT toInt32(dummy) FROM system.one",
    "SELECT a FROM x INTERSECT SELECT toInt32(dummy) FROM system.one",
    "SELECT (SELECT count() FROM system.tables) AS n",
    "SELECT * FROM (SELECT * FROM system.one)",
    "WITH t AS (SELECT * FROM system.one) SELECT * FROM t",
    "WITH system AS (SELECT 1) SELECT * FROM system.one",
    "SELECT arrayMap(i -> (SELECT count() FROM system.tables), [1]) AS v",
    "SELECT * FROM x WHERE a IN system.one",
    "SELECT * FROM x WHERE a GLOBAL IN (SELECT dummy FROM system.one)",
    "SELECT * FROM x WHERE EXISTS (SELECT 1 FROM system.one)",
    "SELECT * FROM x, system.one",
    "SELECT * FROM x CROSS JOIN system.one",
    "SELECT * FROM x PASTE JOIN system.one",
    "SELECT * FROM x GLOBAL ANY LEFT JOIN system.one ON 1",
    "SELECT * FROM x ARRAY JOIN (SELECT groupArray(name) FROM system.tables) AS n",
    "SELECT * FROM x ARRAY JOIN [1] AS n, system.one AS o",
    "SELECT count() OVER (PARTITION BY (SELECT 1 FROM system.one)) AS v FROM x",
    "SELECT * FROM values('v UInt64', (SELECT count() FROM system.tables))",
    "SELECT * FROM numbers((SELECT count() FROM system.tables))",
    "SELECT * FROM x WHERE a = (WITH (SELECT 1 FROM system.one) AS q SELECT q)",
    // Functions that read other tables, dictionaries or the server.
    "SELECT dictGet('d', 'v', toUInt64(1)) AS v",
    "SELECT dictGetOrDefault('d', 'v', toUInt64(1), '') AS v",
    "SELECT joinGet('{db}.{table}', 's', 1) AS v",
    "SELECT joinGet(`{db}`.`{table}`, 's', 1) AS v",
    "SELECT hasColumnInTable('system', 'one', 'dummy') AS v",
    "SELECT currentDatabase() AS v",
    "SELECT getSetting('readonly') AS v",
    "SELECT hostName() AS v",
    "SELECT file('/etc/passwd') AS v",
    // Table functions, also in joins and with odd spellings.
    "SELECT * FROM x JOIN url('http://127.0.0.1:1/', 'CSV', 'a Int32') AS u USING a",
    "SELECT * FROM x, url('http://127.0.0.1:1/', 'CSV', 'a Int32')",
    "SELECT * FROM file('/etc/passwd')",
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT * FROM `file`('/etc/passwd', 'LineAsString')",
    "SELECT * FROM \"file\"('/etc/passwd', 'LineAsString')",
    "SELECT * FROM FILE('/etc/passwd', 'LineAsString')",
    "SELECT * FROM file /* */ ('/etc/passwd', 'LineAsString')",
    "SELECT * FROM numbers(1) AS n JOIN file('/etc/passwd', 'LineAsString') AS f ON 1",
    "SELECT * FROM x WHERE s IN file('/etc/passwd', 'LineAsString')",
    "SELECT * FROM remote('127.0.0.1', system.one)",
    "SELECT * FROM remoteSecure('127.0.0.1', system.one)",
    "SELECT * FROM s3('http://127.0.0.1:1/b/k.csv', 'CSV', 'a Int32')",
    "SELECT * FROM mysql('127.0.0.1:1', 'd', 't', 'u', 'p')",
    "SELECT * FROM postgresql('127.0.0.1:1', 'd', 't', 'u', 'p')",
    "SELECT * FROM cluster('default', system.one)",
    "SELECT * FROM clusterAllReplicas('default', system.one)",
    "SELECT * FROM input('a Int32')",
    "SELECT * FROM executable('cat /etc/passwd', 'TSV', 'line String')",
    "SELECT * FROM merge('{db}', '.*')",
    "SELECT * FROM merge(REGEXP('.*'), '.*')",
    "SELECT * FROM view(SELECT * FROM system.one)",
    "SELECT * FROM loop(system.one) LIMIT 1",
    "SELECT * FROM dictionary('d')",
    "SELECT * FROM sqlite('/etc/passwd', 't')",
    "SELECT * FROM hdfs('hdfs://127.0.0.1:1/f', 'CSV', 'a Int32')",
    "SELECT * FROM jdbc('jdbc:x', 'd', 't')",
    "SELECT * FROM odbc('dsn', 'd', 't')",
    // File paths as table names.
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM `/etc/passwd`",
    "SELECT * FROM \"/etc/passwd\"",
    "SELECT * FROM x, '/etc/passwd'",
    // Settings that lift limits or permissions.
    "SELECT * FROM x SETTINGS max_execution_time = 100000",
    "SELECT * FROM x SETTINGS readonly = 0",
    "SELECT * FROM x SETTINGS max_threads = 1, readonly = 0",
    "SELECT * FROM x SETTINGS max_result_rows = 0",
    "SELECT * FROM x SETTINGS allow_ddl = 1",
    "SELECT * FROM x FORMAT JSON SETTINGS readonly = 0",
    "SELECT * FROM (SELECT * FROM x SETTINGS readonly = 0)",
    "SELECT * FROM x FORMAT Template SETTINGS format_template_resultset = '/etc/passwd'",
    "SELECT * FROM x FORMAT Protobuf SETTINGS format_schema = '/etc/passwd:M'",
    // More than one statement, other statements, output files.
    "SELECT 1; SELECT 2",
    "SELECT * FROM x; DROP TABLE x",
    "SELECT 1;; ",
    "SELECT 1; -- \nSELECT * FROM system.one",
    "DROP TABLE x",
    "INSERT INTO x VALUES (3, 'a')",
    "INSERT INTO FUNCTION file('/tmp/roost-red-team.csv') SELECT * FROM x",
    "ALTER TABLE x DELETE WHERE 1",
    "SET readonly = 0",
    "SHOW TABLES",
    "SHOW DATABASES",
    "DESCRIBE TABLE system.one",
    "EXISTS TABLE system.one",
    "EXPLAIN SELECT * FROM system.one",
    "SELECT * FROM (SHOW TABLES)",
    "SYSTEM RELOAD DICTIONARIES",
    "ATTACH TABLE t FROM '/etc' (a String) ENGINE = File(LineAsString)",
    "SELECT * FROM x INTO OUTFILE '/tmp/roost-red-team.out'",
    "SELECT * FROM x INTO OUTFILE '/tmp/roost-red-team.out' FORMAT CSV",
    "SELECT 1 INTO\tOUTFILE '/tmp/roost-red-team.out'",
    // Query parameters of the engine, and client-only syntax.
    "SELECT {p:String} AS v",
    "SELECT * FROM {t:Identifier}",
    "SELECT 1 \\G",
];

#[tokio::test(flavor = "multi_thread")]
async fn sql_escapes_are_refused() {
    let api = Api::start().await;
    assert!(ESCAPES.len() >= 100, "{} attempts", ESCAPES.len());
    for template in ESCAPES {
        let sql = api.fill(template);
        // GET ?q=, and the raw body a `curl -d` sends.
        refused(
            api.get("/v0/sql")
                .query(&[("q", &sql)])
                .send()
                .await
                .unwrap(),
            &sql,
        )
        .await;
        refused(
            api.post("/v0/sql").body(sql.clone()).send().await.unwrap(),
            &sql,
        )
        .await;
    }
    api.assert_alive().await;
    assert!(!std::path::Path::new("/tmp/roost-red-team.out").exists());
    assert!(!std::path::Path::new("/tmp/roost-red-team.csv").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn pipe_node_escapes_are_refused() {
    let api = Api::start().await;
    for template in ESCAPES {
        let sql = api.fill(template);
        // The published node itself.
        let (status, body) = api.pipe("attack", &[("attack_node", &sql)]).await;
        if status == StatusCode::OK {
            refused(api.get("/v0/pipes/attack.json").send().await.unwrap(), &sql).await;
            refused(
                api.get("/v0/pipes/attack/explain").send().await.unwrap(),
                &sql,
            )
            .await;
        } else {
            assert!(status.is_client_error(), "{sql}: {status} {body}");
        }
        // An earlier node that the published node reads.
        let (status, body) = api
            .pipe(
                "indirect",
                &[("hidden", &sql), ("shown", "SELECT * FROM hidden")],
            )
            .await;
        if status == StatusCode::OK {
            refused(
                api.get("/v0/pipes/indirect.json").send().await.unwrap(),
                &sql,
            )
            .await;
            refused(
                api.get("/v0/pipes/indirect.csv").send().await.unwrap(),
                &sql,
            )
            .await;
        } else {
            assert!(status.is_client_error(), "{sql}: {status} {body}");
        }
    }
    // The same attacks as `q=` over a harmless endpoint.
    api.pipe_ok("harmless", &[("h", "SELECT a, s FROM x")])
        .await;
    for template in ESCAPES {
        let q = api.fill(template);
        refused(
            api.get("/v0/pipes/harmless.json")
                .query(&[("q", &q)])
                .send()
                .await
                .unwrap(),
            &q,
        )
        .await;
    }
    // q= reads only the endpoint's result, `_`, not the workspace.
    for q in [
        "SELECT * FROM x",
        "SELECT * FROM x_quarantine",
        "SELECT * FROM harmless",
        "SELECT * FROM _, x",
    ] {
        refused(
            api.get("/v0/pipes/harmless.json")
                .query(&[("q", q)])
                .send()
                .await
                .unwrap(),
            q,
        )
        .await;
    }
    api.assert_alive().await;
}

/// Values a caller may send as template parameters, each meant to break out of its literal.
fn injections() -> Vec<String> {
    let mut values: Vec<String> = [
        "' OR 1=1 --",
        "') UNION ALL SELECT name FROM system.tables --",
        "' UNION ALL SELECT s FROM x --",
        "\\' , (SELECT count() FROM system.one) --",
        "\\",
        "\\\\'",
        "a\\'b",
        "\\x27 OR 1",
        "*/ FROM system.one /*",
        "/* unterminated",
        "-- comment\nFROM system.one",
        "# hash\n, 1",
        "line one\nline two\r\n\ttabbed",
        "nul\u{0}byte",
        "{% if 1 %}injected{% end %}",
        "{% import os %}{{ os.system('id') }}",
        "{{ String(s) }}",
        "{{ x }}",
        "$$ FROM system.one $$",
        "`system`.`one`",
        "\"; SELECT 1; --",
        "x' FORMAT TSV INTO OUTFILE '/tmp/roost-red-team.out' --",
        "' SETTINGS readonly = 0 --",
        "'; DROP TABLE x; --",
        "{p:String}",
        "ünïcødé ✓ 日本",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // A megabyte of quotes, backslashes and comment starts.
    values.push("'\\-- ".repeat(200_000));
    values
}

#[tokio::test(flavor = "multi_thread")]
async fn template_parameters_stay_data() {
    let api = Api::start().await;
    api.pipe_ok(
        "echo_string",
        &[("n", "%\nSELECT {{ String(v, 'none') }} AS v")],
    )
    .await;
    api.pipe_ok("echo_raw", &[("n", "%\nSELECT {{ v }} AS v")])
        .await;
    api.pipe_ok(
        "echo_array",
        &[("n", "%\nSELECT {{ Array(v, 'String', default='a') }} AS v")],
    )
    .await;
    api.pipe_ok("echo_int", &[("n", "%\nSELECT {{ Int32(v, 0) }} AS v")])
        .await;
    api.pipe_ok(
        "echo_ints",
        &[("n", "%\nSELECT {{ Array(v, 'Int32', default='1') }} AS v")],
    )
    .await;
    api.pipe_ok(
        "echo_date",
        &[(
            "n",
            "%\nSELECT {{ DateTime(v, '2024-01-01 00:00:00') }} AS v",
        )],
    )
    .await;
    // A parameter inside an earlier node, read by the published one.
    api.pipe_ok(
        "echo_nested",
        &[
            ("inner", "%\nSELECT {{ String(v, 'none') }} AS v"),
            ("outer", "SELECT v FROM inner"),
        ],
    )
    .await;

    for value in injections() {
        let shown: String = value.chars().take(60).collect();
        // Tinybird escapes `%` in string parameters as `\%` (for LIKE; `sql_unescape` undoes it)
        // and ClickHouse keeps `\%` as written: that is the one change a value goes through.
        let expected = json!(value.replace('%', "\\%"));
        // Strings come back as themselves, whatever they hold.
        for pipe in ["echo_string", "echo_raw", "echo_nested"] {
            let attempt = format!("{pipe} v={shown:?}");
            verbatim_or_refused(api.call(pipe, &[("v", &value)]).await, &attempt, &expected).await;
        }
        if value.len() < 10_000 {
            // Small ones must not be refused at all.
            let attempt = format!("echo_string v={shown:?} (GET)");
            verbatim(
                api.get("/v0/pipes/echo_string.json")
                    .query(&[("v", &value)])
                    .send()
                    .await
                    .unwrap(),
                &attempt,
                &expected,
            )
            .await;
        }
        // Repeated values are array elements, each verbatim.
        let attempt = format!("echo_array v={shown:?}");
        verbatim_or_refused(
            api.call("echo_array", &[("v", &value), ("v", "second")])
                .await,
            &attempt,
            &json!([value.replace('%', "\\%"), "second"]),
        )
        .await;
        // Typed numbers and dates refuse anything that is not one, naming the parameter.
        for pipe in ["echo_int", "echo_ints", "echo_date"] {
            let attempt = format!("{pipe} v={shown:?}");
            let message = refused(api.call(pipe, &[("v", &value)]).await, &attempt).await;
            assert!(
                message.contains("'v'") || message.contains(" v"),
                "{attempt}: {message:.300}"
            );
        }
    }

    // Numbers that try to be more than a number.
    for value in [
        "1 OR 1=1",
        "1; SELECT 2",
        "1) UNION ALL SELECT 2 --",
        "1 --",
        "1/*x*/",
        "0x10",
        "1e3",
        "--1",
        "１",
        "99999999999999999999999999",
        &"9".repeat(1_000_000),
    ] {
        let shown: String = value.chars().take(40).collect();
        refused(
            api.call("echo_int", &[("v", value)]).await,
            &format!("echo_int v={shown:?}"),
        )
        .await;
        refused(
            api.call("echo_ints", &[("v", value)]).await,
            &format!("echo_ints v={shown:?}"),
        )
        .await;
    }
    verbatim(
        api.call("echo_int", &[("v", "-42")]).await,
        "echo_int -42",
        &json!(-42),
    )
    .await;
    // Python's int() takes surrounding whitespace, as Tinybird does: a number or a refusal.
    for value in ["1\n", " 1", "1 "] {
        verbatim_or_refused(
            api.call("echo_int", &[("v", value)]).await,
            &format!("echo_int {value:?}"),
            &json!(1),
        )
        .await;
    }
    verbatim(
        api.call("echo_ints", &[("v", "1"), ("v", "2")]).await,
        "echo_ints 1,2",
        &json!([1, 2]),
    )
    .await;

    // `{% %}` and `{{ }}` in a value are never evaluated.
    verbatim(
        api.call(
            "echo_raw",
            &[("v", "{% for i in range(100000000) %}x{% end %}")],
        )
        .await,
        "a loop in a value",
        &json!("{\\% for i in range(100000000) \\%}x{\\% end \\%}"),
    )
    .await;
    verbatim(
        api.call("echo_string", &[("v", "100%")]).await,
        "a percent",
        &json!("100\\%"),
    )
    .await;
    api.assert_alive().await;
    assert!(!std::path::Path::new("/tmp/roost-red-team.out").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn identifier_parameters_cannot_name_other_tables() {
    let api = Api::start().await;
    api.pipe_ok(
        "pick_column",
        &[(
            "n",
            "%\nSELECT {{ column(c, 'a') }} AS v FROM x ORDER BY a LIMIT 1",
        )],
    )
    .await;
    api.pipe_ok(
        "pick_symbol",
        &[(
            "n",
            "%\nSELECT {{ symbol(c) }} AS v FROM x ORDER BY a LIMIT 1",
        )],
    )
    .await;
    api.pipe_ok(
        "pick_symbol_double",
        &[(
            "n",
            "%\nSELECT {{ symbol(c, '\"') }} AS v FROM x ORDER BY a LIMIT 1",
        )],
    )
    .await;
    api.pipe_ok(
        "pick_columns",
        &[(
            "n",
            "%\nSELECT {{ columns(c, 'a') }} FROM x ORDER BY a LIMIT 1",
        )],
    )
    .await;
    api.pipe_ok(
        "pick_function",
        &[(
            "n",
            "%\nSELECT {{ columns('s', 's', f) }} FROM x ORDER BY a LIMIT 1",
        )],
    )
    .await;
    api.pipe_ok(
        "pick_table",
        &[("n", "%\nSELECT count() AS v FROM {{ table(t) }}")],
    )
    .await;
    api.pipe_ok(
        "column_as_table",
        &[("n", "%\nSELECT count() AS v FROM {{ column(t, 'x') }}")],
    )
    .await;
    api.pipe_ok(
        "symbol_as_table",
        &[("n", "%\nSELECT count() AS v FROM {{ symbol(t) }}")],
    )
    .await;

    // The legitimate uses work.
    verbatim(
        api.call("pick_column", &[("c", "s")]).await,
        "column s",
        &json!(format!("{INSIDE}-1")),
    )
    .await;
    verbatim(
        api.call("pick_column", &[]).await,
        "column default",
        &json!(1),
    )
    .await;
    verbatim(
        api.call("pick_symbol", &[("c", "a")]).await,
        "symbol a",
        &json!(1),
    )
    .await;
    verbatim(
        api.call("pick_table", &[("t", "x")]).await,
        "table x",
        &json!(2),
    )
    .await;
    verbatim(
        api.call("column_as_table", &[]).await,
        "column() table",
        &json!(2),
    )
    .await;
    let (status, body) = json(api.call("pick_function", &[("f", "upper")]).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"],
        json!([{"s": format!("{INSIDE}-1").to_uppercase()}])
    );

    let db = api.database.clone();
    let table = api.table.clone();
    let names = [
        "a FROM system.one --".to_string(),
        "a`, (SELECT name FROM system.tables) AS `z".to_string(),
        "a\\`, 1 AS `z".to_string(),
        "a\" FROM system.one --".to_string(),
        "dummy".to_string(),
        "system.one.dummy".to_string(),
        "(SELECT 1)".to_string(),
        "a; DROP TABLE x".to_string(),
        "a\n FROM system.one".to_string(),
        "*".to_string(),
        "a/*".to_string(),
        "x".repeat(1_000_000),
    ];
    for name in &names {
        let shown: String = name.chars().take(60).collect();
        for pipe in [
            "pick_column",
            "pick_symbol",
            "pick_symbol_double",
            "pick_columns",
        ] {
            refused(
                api.call(pipe, &[("c", name)]).await,
                &format!("{pipe} c={shown:?}"),
            )
            .await;
        }
    }
    // The engine's full name of the table in FROM qualifies that table's own columns: it reads
    // nothing the query did not already read (or it is refused), and nothing from elsewhere.
    let qualified = format!("{db}.{table}.s");
    for pipe in ["pick_column", "pick_columns"] {
        let response = api.call(pipe, &[("c", &qualified)]).await;
        if response.status().is_success() {
            let (_, body) = json(response).await;
            let values: Vec<&Value> = body["data"][0].as_object().unwrap().values().collect();
            assert_eq!(values, [&json!(format!("{INSIDE}-1"))], "{pipe}: {body}");
        } else {
            refused(response, &format!("{pipe} c={qualified}")).await;
        }
    }
    let tables = [
        "system.one".to_string(),
        "system.tables".to_string(),
        "information_schema.tables".to_string(),
        "default.x".to_string(),
        format!("{db}.{table}"),
        table.clone(),
        format!("{table}_quarantine"),
        "`system`.`one`".to_string(),
        "x; DROP TABLE x".to_string(),
        "x, system.one".to_string(),
        "file('/etc/passwd')".to_string(),
        "numbers(10)".to_string(),
        "x FINAL".to_string(),
        "/etc/passwd".to_string(),
    ];
    for name in &tables {
        for pipe in ["pick_table", "column_as_table", "symbol_as_table"] {
            refused(
                api.call(pipe, &[("t", name)]).await,
                &format!("{pipe} t={name:?}"),
            )
            .await;
        }
    }
    for function in [
        "file",
        "dictGet",
        "joinGet",
        "currentDatabase",
        "hostName",
        "url",
        "s3",
        "getSetting",
    ] {
        refused(
            api.call("pick_function", &[("f", function)]).await,
            &format!("columns(.., fn={function})"),
        )
        .await;
    }
    refused(
        api.call("pick_function", &[("f", "upper(s)) FROM system.one --")])
            .await,
        "fn with SQL",
    )
    .await;
    api.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn node_templates_cannot_write_their_way_out() {
    let api = Api::start().await;
    let db = api.database.clone();
    let table = api.table.clone();
    // Templates whose own text builds forbidden SQL: the rendered SQL is validated like any other.
    let templates = [
        "%\nSELECT * FROM {{ table('system.one') }}".to_string(),
        format!("%\nSELECT * FROM {{{{ table('{db}.{table}') }}}}"),
        format!("%\nSELECT * FROM {{{{ symbol('{table}') }}}}"),
        format!("%\nSELECT * FROM {{{{ column('{db}.{table}') }}}}"),
        "%\n{{ 'SELECT * FROM system.one' }}".to_string(),
        "%\nSELECT 1 AS v {{ 'UNION ALL SELECT 2' }}".to_string(),
        "%\nSELECT * FROM {% if 1 %}system.one{% end %}".to_string(),
        "%\n{% set t = 'system' %}SELECT * FROM {{ table(t + '.one') }}".to_string(),
        "%\nSELECT {{ columns('s', 's', 'file') }} FROM x".to_string(),
        "%\nSELECT {{ columns('dummy', 'a', 'dictGet') }} FROM x".to_string(),
        "%\nSELECT * FROM x {{ max_threads(1) }} SETTINGS readonly = 0".to_string(),
        "%\nSELECT * FROM x; {{ 'DROP TABLE x' }}".to_string(),
        "%\nSELECT {{ tb_secret('anything') }} AS v".to_string(),
        "%\nSELECT {{ __import__('os') }} AS v".to_string(),
        "%\nSELECT {{ v.__class__ }} AS v".to_string(),
        "%\nSELECT {{ open('/etc/passwd').read() }} AS v".to_string(),
        "%\nSELECT {{ eval('1') }} AS v".to_string(),
        "%\n{% for i in range(1000000000) %}{{ i }}{% end %}".to_string(),
        "%\n{% while True %}x{% end %}".to_string(),
        "%\nSELECT {{ 'x' * 100000000 }} AS v".to_string(),
        "%\n{% if %}".to_string(),
        "%\nSELECT {{ String(v) }".to_string(),
    ];
    for template in &templates {
        let (status, body) = api.pipe("templated", &[("n", template)]).await;
        if status == StatusCode::OK {
            refused(api.call("templated", &[("v", "1")]).await, template).await;
        } else {
            assert!(status.is_client_error(), "{template}: {status} {body}");
            assert!(body["error"].is_string(), "{template}: {body}");
        }
    }
    api.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_query_leaves_nothing_for_the_next_one() {
    let api = Api::start().await;
    // ClickHouse writes the first blocks of a result before a later block fails: those rows
    // (here the workspace's own data) must never reach whoever runs the next query.
    let failing = "SELECT number, (SELECT min(s) FROM x) AS leaked, throwIf(number = 5000) AS boom \
                   FROM numbers(10000) SETTINGS max_block_size = 100";
    api.pipe_ok("fails_late", &[("n", failing)]).await;
    api.pipe_ok("fresh", &[("n", "SELECT 'fresh' AS v")]).await;
    for round in 0..3 {
        refused(
            api.get("/v0/sql")
                .query(&[("q", failing)])
                .send()
                .await
                .unwrap(),
            failing,
        )
        .await;
        for _ in 0..3 {
            let response = api
                .get("/v0/sql")
                .query(&[("q", "SELECT 'fresh' AS v")])
                .send()
                .await
                .unwrap();
            verbatim(
                response,
                &format!("query after a failure, round {round}"),
                &json!("fresh"),
            )
            .await;
        }
        refused(
            api.get("/v0/pipes/fails_late.json").send().await.unwrap(),
            "endpoint failing late",
        )
        .await;
        verbatim(
            api.get("/v0/pipes/fresh.json").send().await.unwrap(),
            "endpoint after a failure",
            &json!("fresh"),
        )
        .await;
        let csv = api.get("/v0/pipes/fresh.csv").send().await.unwrap();
        assert_eq!(csv.text().await.unwrap(), "\"v\"\n\"fresh\"\n");
    }
    // Over the row limit, the same.
    let huge = "SELECT number, (SELECT min(s) FROM x) AS leaked FROM numbers(100000000000)";
    refused(
        api.get("/v0/sql")
            .query(&[("q", huge)])
            .send()
            .await
            .unwrap(),
        huge,
    )
    .await;
    let response = api
        .get("/v0/sql")
        .query(&[("q", "SELECT 'fresh' AS v")])
        .send()
        .await
        .unwrap();
    verbatim(response, "query after a limit", &json!("fresh")).await;
    // Past the time limit: the caller's 408, not the server's 500, and nothing left behind.
    let slow = "SELECT sum(cityHash64(number)) AS v FROM numbers(1000000000000)";
    let response = api
        .get("/v0/sql")
        .query(&[("q", slow)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    let message = refused(response, slow).await;
    assert!(message.contains("Timeout"), "{message}");
    let response = api
        .get("/v0/sql")
        .query(&[("q", "SELECT 'fresh' AS v")])
        .send()
        .await
        .unwrap();
    verbatim(response, "query after a timeout", &json!("fresh")).await;
    api.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deep_nesting_is_refused_not_a_crash() {
    let api = Api::start().await;
    let many = |text: &str, n: usize| text.repeat(n);
    // SQL nested past any reason.
    for sql in [
        format!("SELECT {}1{}", many("(", 100_000), many(")", 100_000)),
        format!("SELECT {}1{}", many("[", 100_000), many("]", 100_000)),
        format!(
            "SELECT 1 FROM {}x{}",
            many("(SELECT 1 FROM ", 10_000),
            many(")", 10_000)
        ),
        format!("SELECT {} AS v", vec!["1"; 100_000].join(" + ")),
    ] {
        refused(
            api.post("/v0/sql").body(sql.clone()).send().await.unwrap(),
            &sql[..60],
        )
        .await;
    }
    // Templates whose parsing, rendering or values nest past any reason: an author must not be
    // able to overflow the server's stack.
    let expression = |inner: String| format!("%\nSELECT {{{{ {inner} }}}} AS v");
    let templates = [
        expression(many("(", 10_000) + "1" + &many(")", 10_000)),
        expression(many("[", 10_000) + "1" + &many("]", 10_000)),
        expression(many("-", 10_000) + "1"),
        expression(many("not ", 10_000) + "1"),
        expression(vec!["1"; 10_000].join(" + ")),
        expression("1".to_string() + &many(" if 1 else 1", 10_000)),
        expression("String(v, 'a')".to_string() + &many("[0]", 10_000)),
        format!("%\nSELECT {}1{} AS v", many("{% if 1 %}", 10_000), many("{% end %}", 10_000)),
        "%\n{% set a = [] %}{% for i in range(100000) %}{% set a = [a] %}{% end %}SELECT 1 AS v".to_string(),
        "%\n{% set a = 1 %}{% for i in range(100000) %}{% set a = (a,) %}{% end %}SELECT {{ a }} AS v"
            .to_string(),
    ];
    for template in &templates {
        let shown = &template[..template.len().min(60)];
        let (status, body) = api.pipe("bomb", &[("n", template)]).await;
        if status == StatusCode::OK {
            refused(api.call("bomb", &[("v", "a")]).await, shown).await;
        } else {
            assert!(status.is_client_error(), "{shown}: {status} {body}");
        }
        assert!(
            api.http.get(api.url("/health")).send().await.is_ok(),
            "{shown} took the server down"
        );
    }
    // Long chains of nodes and of pipes compile, or are refused, but never crash.
    let nodes: Vec<(String, String)> = (0..1000)
        .map(|i| {
            let sql = if i == 0 {
                "SELECT a, s FROM x".to_string()
            } else {
                format!("SELECT a, s FROM n{}", i - 1)
            };
            (format!("n{i}"), sql)
        })
        .collect();
    let nodes: Vec<(&str, &str)> = nodes
        .iter()
        .map(|(n, s)| (n.as_str(), s.as_str()))
        .collect();
    let (status, body) = api.pipe("long", &nodes).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let response = api.get("/v0/pipes/long.json").send().await.unwrap();
    if response.status().is_success() {
        let (_, body) = json(response).await;
        assert_eq!(body["rows"], json!(2), "{body}");
    } else {
        refused(response, "1000 chained nodes").await;
    }
    for i in (0..150).rev() {
        let sql = if i == 149 {
            "SELECT a FROM x".to_string()
        } else {
            format!("SELECT a FROM p{}", i + 1)
        };
        api.pipe_ok(&format!("p{i}"), &[("n", &sql)]).await;
    }
    let response = api.get("/v0/pipes/p0.json").send().await.unwrap();
    if response.status().is_success() {
        let (_, body) = json(response).await;
        assert_eq!(body["rows"], json!(2), "{body}");
    } else {
        refused(response, "150 chained pipes").await;
    }
    // Each node reading the one before twice: compiled once each, not 2^25 times.
    let nodes: Vec<(String, String)> = (0..25)
        .map(|i| {
            let sql = match i {
                0 => "SELECT a FROM x".to_string(),
                _ => format!("SELECT a FROM d{0} UNION ALL SELECT a FROM d{0}", i - 1),
            };
            (format!("d{i}"), sql)
        })
        .collect();
    let nodes: Vec<(&str, &str)> = nodes
        .iter()
        .map(|(n, s)| (n.as_str(), s.as_str()))
        .collect();
    api.pipe_ok("diamond", &nodes).await;
    let started = std::time::Instant::now();
    let response = api
        .get("/v0/pipes/diamond.json")
        .query(&[("q", "SELECT count() AS n FROM _")])
        .send()
        .await
        .unwrap();
    if response.status().is_success() {
        let (_, body) = json(response).await;
        assert_eq!(body["data"], json!([{"n": 2u64 << 24}]), "{body}");
    } else {
        refused(response, "a diamond of nodes").await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "took {:?}",
        started.elapsed()
    );
    api.assert_alive().await;
}
