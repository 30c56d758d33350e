//! The Tokens API and JWTs, black-box against a real `roost local`: static tokens of every scope
//! kind allowed and denied on the data source, events, SQL and pipe routes; refresh and delete;
//! JWTs with fixed parameters, and refused when expired, tampered, wrongly signed or foreign; row
//! filters on `/v0/sql` and on endpoints.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Client, Method, RequestBuilder, StatusCode};
use roost_auth::jwt;
use roost_testkit::RoostLocal;
use roost_testkit::http::{error, ok_json};
use serde_json::{Value, json};

struct Api {
    roost: RoostLocal,
    http: Client,
    admin: String,
}

impl Api {
    async fn start() -> Api {
        let roost = RoostLocal::start(env!("CARGO_BIN_EXE_roost"))
            .await
            .expect("roost local starts");
        let admin = roost.tokens.workspace_admin.clone();
        let http = Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        Api { roost, http, admin }
    }

    fn request(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        let builder = self.http.request(method, self.roost.url(path));
        if token.is_empty() {
            builder
        } else {
            builder.bearer_auth(token)
        }
    }

    fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.request(method, path, &self.admin)
    }

    /// Creates a static token with these scopes (as the CLI sends them) and returns its JSON.
    async fn token(&self, name: &str, scopes: &[&str]) -> Value {
        let mut query: Vec<(&str, &str)> = vec![("name", name)];
        query.extend(scopes.iter().map(|scope| ("scope", *scope)));
        ok_json(
            self.admin(Method::POST, "/v0/tokens")
                .query(&query)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// A JWT from `POST /v0/tokens?name=&expiration_time=` with this body.
    async fn jwt(&self, name: &str, expiration_time: i64, body: Value) -> String {
        let response = self
            .admin(Method::POST, "/v0/tokens")
            .query(&[
                ("name", name.to_string()),
                ("expiration_time", expiration_time.to_string()),
            ])
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        ok_json(response).await["token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The rows of `GET /v0/sql` as `token`.
    async fn sql(&self, token: &str, sql: &str) -> Vec<Value> {
        let body = ok_json(
            self.request(Method::GET, "/v0/sql", token)
                .query(&[("q", format!("{sql} FORMAT JSON"))])
                .send()
                .await
                .unwrap(),
        )
        .await;
        body["data"].as_array().cloned().unwrap_or_default()
    }

    /// The rows of an endpoint as `token`.
    async fn endpoint(&self, token: &str, pipe: &str, params: &[(&str, &str)]) -> Vec<Value> {
        let body = ok_json(
            self.request(Method::GET, &format!("/v0/pipes/{pipe}.json"), token)
                .query(params)
                .send()
                .await
                .unwrap(),
        )
        .await;
        body["data"].as_array().cloned().unwrap_or_default()
    }

    async fn status(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<&str>,
    ) -> (u16, String) {
        let mut request = self.request(method, path, token);
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }
}

const EVENTS: &str = concat!(
    r#"{"country":"ES","amount":1}"#,
    "\n",
    r#"{"country":"ES","amount":2}"#,
    "\n",
    r#"{"country":"FR","amount":10}"#,
    "\n",
    r#"{"country":"DE","amount":100}"#,
    "\n"
);

fn pipe(name: &str, sql: &str) -> Value {
    json!({ "name": name, "nodes": [{ "name": format!("{name}_0"), "sql": sql, "type": "endpoint" }] })
}

/// Data sources `events` (4 rows), `other` and `scratch`; endpoints `by_country` (parameter
/// `country`), `all_events` and `other_pipe`.
async fn workspace(api: &Api) {
    for (name, schema) in [
        (
            "events",
            "country String `json:$.country`, amount Int32 `json:$.amount`",
        ),
        ("other", "a Int32 `json:$.a`"),
        ("scratch", "a Int32 `json:$.a`"),
    ] {
        ok_json(
            api.admin(Method::POST, "/v0/datasources")
                .form(&[("name", name), ("schema", schema)])
                .send()
                .await
                .unwrap(),
        )
        .await;
    }
    let response = api
        .admin(Method::POST, "/v0/events?name=events&wait=true")
        .body(EVENTS)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{}",
        response.text().await.unwrap()
    );
    for body in [
        pipe(
            "by_country",
            "%\nSELECT country, sum(amount) AS total FROM events WHERE country = {{ String(country, 'ES') }} GROUP BY country",
        ),
        pipe(
            "all_events",
            "SELECT country, amount FROM events ORDER BY amount",
        ),
        pipe("other_pipe", "SELECT a FROM other"),
    ] {
        ok_json(
            api.admin(Method::POST, "/v0/pipes")
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await;
    }
}

fn value(token: &Value) -> String {
    token["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {token}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_scope_kind_is_allowed_and_denied_where_tinybird_says() {
    let api = Api::start().await;
    workspace(&api).await;

    let mut tokens = std::collections::HashMap::new();
    for (name, scope) in [
        ("read", "DATASOURCES:READ:events"),
        ("append", "DATASOURCES:APPEND:events"),
        ("create", "DATASOURCES:CREATE"),
        ("drop", "DATASOURCES:DROP:scratch"),
        ("pipe_read", "PIPES:READ:by_country"),
        ("pipe_create", "PIPES:CREATE"),
        ("pipe_drop", "PIPES:DROP:by_country"),
        ("tokens", "TOKENS"),
    ] {
        let created = api.token(&format!("t_{name}"), &[scope]).await;
        assert_eq!(created["scopes"].as_array().unwrap().len(), 1, "{created}");
        tokens.insert(name, value(&created));
    }
    tokens.insert("admin", api.admin.clone());
    tokens.insert("none", String::new());
    tokens.insert("forged", "p.eyJ1IjoiIiwiaWQiOiJub3BlIn0.secret".to_string());

    let sql = |table: &str| format!("/v0/sql?q=SELECT+count()+AS+c+FROM+{table}");
    let new_pipe = |name: &str| pipe(name, "SELECT 1 AS one").to_string();
    let event = r#"{"country":"IT","amount":5}"#;
    let cases: Vec<(&str, Method, String, Option<String>, u16)> = vec![
        // DATASOURCES:READ:events
        (
            "read",
            Method::GET,
            "/v0/datasources/events".into(),
            None,
            200,
        ),
        (
            "read",
            Method::GET,
            "/v0/datasources/other".into(),
            None,
            403,
        ),
        ("read", Method::GET, sql("events"), None, 200),
        ("read", Method::GET, sql("other"), None, 403),
        (
            "read",
            Method::POST,
            "/v0/events?name=events".into(),
            Some(event.into()),
            403,
        ),
        (
            "read",
            Method::GET,
            "/v0/pipes/by_country.json".into(),
            None,
            403,
        ),
        (
            "read",
            Method::DELETE,
            "/v0/datasources/events".into(),
            None,
            403,
        ),
        (
            "read",
            Method::POST,
            "/v0/datasources/events/truncate".into(),
            None,
            403,
        ),
        (
            "read",
            Method::POST,
            "/v0/tokens?name=x&scope=DATASOURCES:READ:events".into(),
            None,
            403,
        ),
        ("read", Method::GET, "/v0/tokens".into(), None, 403),
        ("read", Method::GET, "/v0/tokens/t_read".into(), None, 403),
        // DATASOURCES:APPEND:events
        (
            "append",
            Method::POST,
            "/v0/events?name=events&wait=true".into(),
            Some(event.into()),
            200,
        ),
        (
            "append",
            Method::POST,
            "/v0/events?name=other".into(),
            Some(r#"{"a":1}"#.into()),
            403,
        ),
        ("append", Method::GET, sql("events"), None, 403),
        (
            "append",
            Method::GET,
            "/v0/datasources/events".into(),
            None,
            200,
        ),
        (
            "append",
            Method::POST,
            "/v0/datasources/events/truncate".into(),
            None,
            403,
        ),
        (
            "append",
            Method::GET,
            "/v0/pipes/by_country.json".into(),
            None,
            403,
        ),
        // DATASOURCES:CREATE
        (
            "create",
            Method::POST,
            "/v0/datasources?name=created&schema=a+Int32".into(),
            None,
            200,
        ),
        (
            "create",
            Method::POST,
            "/v0/events?name=brand_new&wait=true".into(),
            Some(r#"{"b":1}"#.into()),
            200,
        ),
        ("create", Method::GET, sql("events"), None, 403),
        (
            "create",
            Method::POST,
            "/v0/pipes".into(),
            Some(new_pipe("by_creator")),
            403,
        ),
        (
            "create",
            Method::DELETE,
            "/v0/datasources/other".into(),
            None,
            403,
        ),
        // DATASOURCES:DROP:scratch
        (
            "drop",
            Method::POST,
            "/v0/datasources/scratch/truncate".into(),
            None,
            205,
        ),
        (
            "drop",
            Method::POST,
            "/v0/datasources/events/truncate".into(),
            None,
            403,
        ),
        ("drop", Method::GET, sql("scratch"), None, 403),
        (
            "drop",
            Method::POST,
            "/v0/events?name=scratch".into(),
            Some(r#"{"a":1}"#.into()),
            403,
        ),
        (
            "drop",
            Method::DELETE,
            "/v0/datasources/other".into(),
            None,
            403,
        ),
        // PIPES:READ:by_country
        (
            "pipe_read",
            Method::GET,
            "/v0/pipes/by_country.json".into(),
            None,
            200,
        ),
        (
            "pipe_read",
            Method::GET,
            "/v0/pipes/by_country".into(),
            None,
            200,
        ),
        (
            "pipe_read",
            Method::GET,
            "/v0/pipes/other_pipe.json".into(),
            None,
            403,
        ),
        ("pipe_read", Method::GET, sql("events"), None, 403),
        (
            "pipe_read",
            Method::DELETE,
            "/v0/pipes/by_country".into(),
            None,
            403,
        ),
        (
            "pipe_read",
            Method::GET,
            "/v0/datasources/events".into(),
            None,
            403,
        ),
        // PIPES:CREATE
        (
            "pipe_create",
            Method::POST,
            "/v0/pipes".into(),
            Some(new_pipe("by_pipe_creator")),
            200,
        ),
        (
            "pipe_create",
            Method::GET,
            "/v0/pipes/by_country.json".into(),
            None,
            403,
        ),
        (
            "pipe_create",
            Method::DELETE,
            "/v0/pipes/by_country".into(),
            None,
            403,
        ),
        ("pipe_create", Method::GET, sql("events"), None, 403),
        // PIPES:DROP:by_country
        (
            "pipe_drop",
            Method::PUT,
            "/v0/pipes/by_country?description=changed".into(),
            None,
            200,
        ),
        (
            "pipe_drop",
            Method::GET,
            "/v0/pipes/by_country.json".into(),
            None,
            403,
        ),
        (
            "pipe_drop",
            Method::DELETE,
            "/v0/pipes/other_pipe".into(),
            None,
            403,
        ),
        (
            "pipe_drop",
            Method::POST,
            "/v0/pipes".into(),
            Some(new_pipe("by_pipe_dropper")),
            403,
        ),
        // TOKENS
        ("tokens", Method::GET, "/v0/tokens".into(), None, 200),
        (
            "tokens",
            Method::POST,
            "/v0/tokens?name=made&scope=PIPES:READ:by_country".into(),
            None,
            200,
        ),
        (
            "tokens",
            Method::POST,
            "/v0/tokens?name=escalate&scope=ADMIN".into(),
            None,
            403,
        ),
        (
            "tokens",
            Method::GET,
            "/v0/tokens/admin%20token".into(),
            None,
            403,
        ),
        (
            "tokens",
            Method::POST,
            "/v0/tokens/admin%20token/refresh".into(),
            None,
            403,
        ),
        ("tokens", Method::GET, sql("events"), None, 403),
        (
            "tokens",
            Method::GET,
            "/v0/pipes/by_country.json".into(),
            None,
            403,
        ),
        // ADMIN, and no or a forged token
        ("admin", Method::GET, sql("events"), None, 200),
        (
            "admin",
            Method::GET,
            "/v0/pipes/other_pipe.json".into(),
            None,
            200,
        ),
        ("admin", Method::GET, "/v0/tokens".into(), None, 200),
        ("none", Method::GET, sql("events"), None, 403),
        ("none", Method::GET, "/v0/tokens".into(), None, 403),
        (
            "forged",
            Method::GET,
            "/v0/pipes/by_country.json".into(),
            None,
            403,
        ),
        ("forged", Method::GET, "/v0/tokens".into(), None, 403),
        // Pipe definitions, explain and OpenAPI, and routes of the other kinds.
        (
            "pipe_read",
            Method::GET,
            "/v0/pipes/by_country".into(),
            None,
            200,
        ),
        (
            "pipe_read",
            Method::GET,
            "/v0/pipes/by_country/explain".into(),
            None,
            200,
        ),
        ("pipe_read", Method::GET, sql("events"), None, 403),
        (
            "pipe_read",
            Method::GET,
            "/v0/pipes/openapi.json".into(),
            None,
            200,
        ),
        (
            "append",
            Method::GET,
            "/v0/pipes/by_country.json".into(),
            None,
            403,
        ),
        (
            "create",
            Method::GET,
            "/v0/pipes/by_country.json".into(),
            None,
            403,
        ),
        (
            "drop",
            Method::GET,
            "/v0/pipes/by_country.csv".into(),
            None,
            403,
        ),
        ("tokens", Method::GET, "/v0/tokens".into(), None, 200),
        ("pipe_create", Method::GET, "/v0/tokens".into(), None, 403),
        (
            "admin",
            Method::GET,
            "/v0/pipes/openapi.json".into(),
            None,
            200,
        ),
        ("none", Method::GET, "/v0/pipes".into(), None, 403),
        ("forged", Method::GET, "/v0/datasources".into(), None, 403),
    ];
    assert!(cases.len() >= 30);
    let mut failures = Vec::new();
    for (who, method, path, body, expected) in &cases {
        let (status, text) = api
            .status(&tokens[who], method.clone(), path, body.as_deref())
            .await;
        if status != *expected {
            failures.push(format!(
                "{who} {method} {path}: expected {expected}, got {status}: {text}"
            ));
        } else if status >= 400 {
            assert!(
                serde_json::from_str::<Value>(&text).is_ok_and(|v| v["error"].is_string()),
                "{who} {method} {path}: {text}"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // Lists show only what the caller may manage: TOKENS does not see ADMIN tokens.
    let listed = ok_json(
        api.request(Method::GET, "/v0/tokens", &tokens["tokens"])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let names: Vec<&str> = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"t_read") && names.contains(&"made") && !names.contains(&"admin token"),
        "{names:?}"
    );
    let listed = ok_json(api.admin(Method::GET, "/v0/tokens").send().await.unwrap()).await;
    let read = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "t_read")
        .unwrap()
        .clone();
    assert_eq!(
        read["scopes"],
        json!([{ "type": "DATASOURCES:READ", "resource": "events" }])
    );
    assert_eq!(read["origin"]["type"], "C");
    assert!(
        listed["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "admin token" && t["scopes"] == json!([{ "type": "ADMIN" }]))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_read_changed_refreshed_and_revoked() {
    let api = Api::start().await;
    workspace(&api).await;
    let created = api.token("reader", &["DATASOURCES:READ:events"]).await;
    let id = created["id"].as_str().unwrap().to_string();
    let old = value(&created);
    assert_eq!(
        api.sql(&old, "SELECT count() AS c FROM events").await[0]["c"],
        4
    );

    // By id and by name.
    for path in [format!("/v0/tokens/{id}"), "/v0/tokens/reader".to_string()] {
        let got = ok_json(api.admin(Method::GET, &path).send().await.unwrap()).await;
        assert_eq!(
            (got["id"].as_str(), got["token"].as_str()),
            (Some(id.as_str()), Some(old.as_str()))
        );
    }

    // PUT replaces the scopes and renames; the value stays.
    let updated = ok_json(
        api.admin(Method::PUT, "/v0/tokens/reader?name=pipe_reader&scope=PIPES:READ:all_events&scope=DATASOURCES:READ:other")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(updated["name"], "pipe_reader");
    assert_eq!(
        updated["scopes"],
        json!([{ "type": "PIPES:READ", "resource": "all_events" }, { "type": "DATASOURCES:READ", "resource": "other" }])
    );
    assert_eq!(value(&updated), old);
    error(
        api.request(Method::GET, "/v0/sql?q=SELECT+1+FROM+events", &old)
            .send()
            .await
            .unwrap(),
        403,
    )
    .await;
    assert_eq!(api.endpoint(&old, "all_events", &[]).await.len(), 4);

    // Scopes in the body, as the CLI sends long lists.
    let updated = ok_json(
        api.admin(Method::PUT, &format!("/v0/tokens/{id}"))
            .body("scope=DATASOURCES:READ:events&scope=PIPES:READ:all_events")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(updated["scopes"].as_array().unwrap().len(), 2, "{updated}");

    // Bad requests.
    error(
        api.admin(
            Method::POST,
            "/v0/tokens?name=pipe_reader&scope=PIPES:READ:all_events",
        )
        .send()
        .await
        .unwrap(),
        409,
    )
    .await;
    error(
        api.admin(Method::POST, "/v0/tokens?name=x&scope=PIPES:READ")
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    error(
        api.admin(
            Method::POST,
            "/v0/tokens?name=x&scope=PIPES:READ:no_such_pipe",
        )
        .send()
        .await
        .unwrap(),
        400,
    )
    .await;
    error(
        api.admin(
            Method::POST,
            "/v0/tokens?name=x&scope=DATASOURCES:READ:events:no_column = 1",
        )
        .send()
        .await
        .unwrap(),
        400,
    )
    .await;
    error(
        api.admin(
            Method::POST,
            "/v0/tokens?name=x&scope=DATASOURCES:READ:events:1) UNION ALL (SELECT 1",
        )
        .send()
        .await
        .unwrap(),
        400,
    )
    .await;
    error(
        api.admin(Method::POST, "/v0/tokens?scope=TOKENS")
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    error(
        api.admin(Method::GET, "/v0/tokens/missing")
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    error(
        api.admin(Method::DELETE, "/v0/tokens/admin%20token")
            .send()
            .await
            .unwrap(),
        403,
    )
    .await;

    // Refresh: a new value with the same scopes; the old value stops working.
    let refreshed = ok_json(
        api.admin(Method::POST, &format!("/v0/tokens/{id}/refresh"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let new = value(&refreshed);
    assert_ne!(new, old);
    assert_eq!(refreshed["scopes"], updated["scopes"]);
    error(
        api.request(Method::GET, "/v0/sql?q=SELECT+count()+FROM+events", &old)
            .send()
            .await
            .unwrap(),
        403,
    )
    .await;
    assert_eq!(
        api.sql(&new, "SELECT count() AS c FROM events").await[0]["c"],
        4
    );

    // Delete revokes at once.
    let response = api
        .admin(Method::DELETE, "/v0/tokens/pipe_reader")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    error(
        api.request(Method::GET, "/v0/sql?q=SELECT+count()+FROM+events", &new)
            .send()
            .await
            .unwrap(),
        403,
    )
    .await;
    error(
        api.admin(Method::DELETE, "/v0/tokens/pipe_reader")
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn jwts_fix_parameters_and_are_refused_when_expired_tampered_or_foreign() {
    let api = Api::start().await;
    workspace(&api).await;
    let in_an_hour = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 3600;
    let jwt = api
        .jwt(
            "frontend",
            in_an_hour,
            json!({
                "scopes": [{ "type": "PIPES:READ", "resource": "by_country", "fixed_params": { "country": "FR" } }],
                "limits": { "rps": 10 },
            }),
        )
        .await;
    assert_eq!(jwt.split('.').count(), 3);
    let payload: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(payload["name"], "frontend");
    assert_eq!(payload["exp"], in_an_hour);
    assert_eq!(payload["limits"]["rps"], 10);
    assert_eq!(payload["scopes"][0]["fixed_params"]["country"], "FR");
    assert!(payload["workspace_id"].is_string());

    // The fixed value wins over the request's, with the header and with ?token=.
    for params in [
        vec![],
        vec![("country", "ES")],
        vec![("country", "DE"), ("country", "ES")],
    ] {
        let rows = api.endpoint(&jwt, "by_country", &params).await;
        assert_eq!(
            rows,
            [json!({ "country": "FR", "total": 10 })],
            "{params:?}"
        );
    }
    let body = ok_json(
        api.http
            .get(api.roost.url("/v0/pipes/by_country.json"))
            .query(&[("token", jwt.as_str()), ("country", "ES")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(body["data"][0]["country"], "FR");
    // A JWT reads only what its scopes name.
    for (method, path) in [
        (Method::GET, "/v0/pipes/all_events.json"),
        (Method::GET, "/v0/sql?q=SELECT+1+FROM+events"),
        (Method::GET, "/v0/tokens"),
        (Method::POST, "/v0/tokens?name=x&scope=ADMIN"),
        (Method::DELETE, "/v0/pipes/by_country"),
    ] {
        error(api.request(method, path, &jwt).send().await.unwrap(), 403).await;
    }

    // Expired, tampered, signed with another key, or for another workspace.
    let workspace_id = payload["workspace_id"].as_str().unwrap().to_string();
    let claims = |workspace: &str, exp: i64| jwt::Claims {
        workspace_id: workspace.to_string(),
        name: "forged".into(),
        exp,
        scopes: vec![jwt::ClaimScope {
            kind: "PIPES:READ".into(),
            resource: "by_country".into(),
            fixed_params: None,
            filter: None,
        }],
        limits: None,
    };
    let parts: Vec<&str> = jwt.split('.').collect();
    let mut changed = payload.clone();
    changed["scopes"][0]["fixed_params"]["country"] = "ES".into();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(changed.to_string()),
        parts[2]
    );
    let expired = jwt::sign(&claims(&workspace_id, 1), &api.admin);
    let wrong_key = jwt::sign(&claims(&workspace_id, in_an_hour), &api.roost.tokens.admin);
    let foreign = jwt::sign(&claims("someone_else", in_an_hour), &api.admin);
    // The same claims with the right key work: only what differs above is refused.
    assert_eq!(
        api.endpoint(
            &jwt::sign(&claims(&workspace_id, in_an_hour), &api.admin),
            "by_country",
            &[]
        )
        .await
        .len(),
        1
    );
    for (what, bad) in [
        ("tampered", tampered),
        ("foreign workspace", foreign),
        ("wrong key", wrong_key),
        ("expired", expired),
        ("alg none", "eyJhbGciOiJub25lIn0.e30.".to_string()),
    ] {
        let message = error(
            api.request(Method::GET, "/v0/pipes/by_country.json", &bad)
                .send()
                .await
                .unwrap(),
            403,
        )
        .await;
        assert!(message.contains("Invalid token"), "{what}: {message}");
    }
    error(
        api.admin(Method::POST, "/v0/tokens")
            .query(&[("name", "x"), ("expiration_time", "1")])
            .body(
                json!({ "scopes": [{ "type": "PIPES:READ", "resource": "by_country" }] })
                    .to_string(),
            )
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    error(
        api.admin(Method::POST, "/v0/tokens")
            .query(&[("name", "x"), ("expiration_time", &in_an_hour.to_string())])
            .body(json!({ "scopes": [{ "type": "ADMIN" }] }).to_string())
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;

    // Refreshing the workspace admin token invalidates every JWT it signed.
    ok_json(
        api.admin(Method::POST, "/v0/tokens/admin%20token/refresh")
            .send()
            .await
            .unwrap(),
    )
    .await;
    error(
        api.request(Method::GET, "/v0/pipes/by_country.json", &jwt)
            .send()
            .await
            .unwrap(),
        403,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn row_filters_apply_to_sql_and_endpoints() {
    let api = Api::start().await;
    workspace(&api).await;
    let spanish = value(
        &api.token(
            "spanish",
            &[
                "DATASOURCES:READ:events:country = 'ES'",
                "PIPES:READ:all_events",
            ],
        )
        .await,
    );
    let rows = api
        .sql(
            &spanish,
            "SELECT country, count() AS c, sum(amount) AS s FROM events GROUP BY country",
        )
        .await;
    assert_eq!(rows, [json!({ "country": "ES", "c": 2, "s": 3 })]);
    let rows = api
        .sql(
            &spanish,
            "SELECT count() AS c FROM events AS e WHERE e.amount > 1",
        )
        .await;
    assert_eq!(rows[0]["c"], 1);
    error(
        api.request(
            Method::GET,
            "/v0/sql?q=SELECT+count()+FROM+events_quarantine",
            &spanish,
        )
        .send()
        .await
        .unwrap(),
        403,
    )
    .await;
    let rows = api.endpoint(&spanish, "all_events", &[]).await;
    assert_eq!(
        rows,
        [
            json!({ "country": "ES", "amount": 1 }),
            json!({ "country": "ES", "amount": 2 })
        ]
    );

    // Two filters of one data source widen each other; an unfiltered grant lifts them.
    let two = value(
        &api.token(
            "two",
            &[
                "DATASOURCES:READ:events:country = 'ES'",
                "DATASOURCES:READ:events:amount >= 100",
            ],
        )
        .await,
    );
    assert_eq!(
        api.sql(&two, "SELECT count() AS c FROM events").await[0]["c"],
        3
    );
    let both = value(
        &api.token(
            "both",
            &[
                "DATASOURCES:READ:events:country = 'ES'",
                "DATASOURCES:READ:events",
            ],
        )
        .await,
    );
    assert_eq!(
        api.sql(&both, "SELECT count() AS c FROM events").await[0]["c"],
        4
    );
    // Admin tokens and tokens without a filter on it see everything.
    assert_eq!(
        api.sql(&api.admin, "SELECT count() AS c FROM events").await[0]["c"],
        4
    );
    assert_eq!(api.endpoint(&api.admin, "all_events", &[]).await.len(), 4);

    // A JWT's filter applies to the endpoints it calls.
    let in_an_hour = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 3600;
    let jwt = api
        .jwt(
            "filtered",
            in_an_hour,
            json!({ "scopes": [
                { "type": "PIPES:READ", "resource": "all_events" },
                { "type": "DATASOURCES:READ", "resource": "events", "filter": "country = 'FR'" },
            ] }),
        )
        .await;
    assert_eq!(
        api.endpoint(&jwt, "all_events", &[]).await,
        [json!({ "country": "FR", "amount": 10 })]
    );
    assert_eq!(
        api.sql(&jwt, "SELECT count() AS c FROM events").await[0]["c"],
        1
    );
}
