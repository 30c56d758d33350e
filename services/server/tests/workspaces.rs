//! Organizations and workspaces, black-box against a real `roost local`: a second workspace made
//! with the user token, both holding a data source and a pipe of the same names with different
//! rows, and neither reaching the other's through any route; the user token manages workspaces
//! but reads no data; deleting a workspace drops its database. Then the Events API's capacity
//! and a JWT's `limits.rps`: 429 with the rate-limit headers past a low configured limit.

use std::time::Duration;

use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use roost_auth::jwt;
use roost_testkit::RoostLocal;
use serde_json::{Value, json};

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn request(
    http: &Client,
    roost: &RoostLocal,
    method: Method,
    path: &str,
    token: &str,
) -> RequestBuilder {
    let builder = http.request(method, roost.url(path));
    if token.is_empty() {
        builder
    } else {
        builder.bearer_auth(token)
    }
}

async fn ok_json(response: Response) -> Value {
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{status}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

async fn status_of(response: Response) -> (StatusCode, String) {
    let status = response.status();
    (status, response.text().await.unwrap())
}

/// One tenant: its id, its admin token, and what it created.
struct Tenant {
    name: String,
    id: String,
    token: String,
}

const SCHEMA: &str = "who String `json:$.who`, v Int32 `json:$.v`";

/// `events` with `rows` rows of `who`, and the endpoint `counts` over it.
async fn fill(http: &Client, roost: &RoostLocal, tenant: &Tenant, rows: usize) {
    let token = &tenant.token;
    ok_json(
        request(http, roost, Method::POST, "/v0/datasources", token)
            .form(&[("name", "events"), ("schema", SCHEMA)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let body: String = (0..rows)
        .map(|v| format!("{{\"who\":\"{}\",\"v\":{v}}}\n", tenant.name))
        .collect();
    let response = request(
        http,
        roost,
        Method::POST,
        "/v0/events?name=events&wait=true",
        token,
    )
    .body(body)
    .send()
    .await
    .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{}",
        response.text().await.unwrap()
    );
    let pipe = json!({ "name": "counts", "nodes": [{ "name": "counts_0", "sql": "SELECT who, count() AS c FROM events GROUP BY who", "type": "endpoint" }] });
    ok_json(
        request(http, roost, Method::POST, "/v0/pipes", token)
            .json(&pipe)
            .send()
            .await
            .unwrap(),
    )
    .await;
}

/// `(who, count)` of `events` as `token` sees it through `/v0/sql` and through the endpoint.
async fn counts(http: &Client, roost: &RoostLocal, token: &str) -> (Vec<Value>, Vec<Value>) {
    let sql = ok_json(
        request(http, roost, Method::GET, "/v0/sql", token)
            .query(&[(
                "q",
                "SELECT who, count() AS c FROM events GROUP BY who FORMAT JSON",
            )])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let endpoint = ok_json(
        request(http, roost, Method::GET, "/v0/pipes/counts.json", token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    (
        sql["data"].as_array().unwrap().clone(),
        endpoint["data"].as_array().unwrap().clone(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workspaces_with_the_same_names_never_see_each_other() {
    let roost = RoostLocal::start(env!("CARGO_BIN_EXE_roost"))
        .await
        .expect("roost local starts");
    let http = client();
    let user = roost.tokens.user.clone();
    let cli_admin = roost.tokens.admin.clone();
    let first_token = roost.tokens.workspace_admin.clone();

    // Listing: the user token and the user's own admin token (as the Forward tb calls it) may;
    // the workspace's admin token may not.
    let listed = ok_json(
        request(
            &http,
            &roost,
            Method::GET,
            "/v1/user/workspaces?with_organization=true",
            &cli_admin,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    let organization_id = listed["organization_id"].as_str().unwrap().to_string();
    assert_eq!(
        listed["workspaces"].as_array().unwrap().len(),
        1,
        "{listed}"
    );
    let seed = &listed["workspaces"][0];
    assert_eq!(seed["token"], first_token.as_str());
    assert_eq!(seed["organization"]["id"], organization_id.as_str());
    let (status, _) = status_of(
        request(
            &http,
            &roost,
            Method::GET,
            "/v1/user/workspaces",
            &first_token,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Creating: only the user token.
    for token in [&first_token, &cli_admin] {
        let (status, body) = status_of(
            request(
                &http,
                &roost,
                Method::POST,
                "/v1/workspaces?name=second",
                token,
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    let (status, body) = status_of(
        request(
            &http,
            &roost,
            Method::POST,
            "/v1/workspaces?name=bad-name!",
            &user,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let created = ok_json(
        request(
            &http,
            &roost,
            Method::POST,
            "/v1/workspaces?name=second",
            &user,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    let (status, body) = status_of(
        request(
            &http,
            &roost,
            Method::POST,
            "/v1/workspaces?name=second",
            &user,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let first = Tenant {
        name: "first".into(),
        id: seed["id"].as_str().unwrap().into(),
        token: first_token.clone(),
    };
    let second = Tenant {
        name: "second".into(),
        id: created["id"].as_str().unwrap().into(),
        token: created["token"].as_str().unwrap().into(),
    };
    assert_ne!(first.id, second.id);
    let current = ok_json(
        request(&http, &roost, Method::GET, "/v1/workspace", &second.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(current["id"], second.id.as_str());
    assert_eq!(current["name"], "second");

    // Organizations: the user's, with its member and both workspaces; not another id, not with
    // a workspace token.
    let organizations = ok_json(
        request(&http, &roost, Method::GET, "/v0/organizations", &user)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        organizations["organizations"][0]["id"],
        organization_id.as_str()
    );
    let members = ok_json(
        request(
            &http,
            &roost,
            Method::GET,
            &format!("/v0/organizations/{organization_id}/members"),
            &user,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(members["members"][0]["email"], "local@roost.dev");
    let workspaces = ok_json(
        request(
            &http,
            &roost,
            Method::GET,
            &format!("/v0/organizations/{organization_id}/workspaces"),
            &user,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    let mut names: Vec<&str> = workspaces["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["local", "second"]);
    for (path, token) in [
        (
            format!("/v0/organizations/{organization_id}/workspaces"),
            &second.token,
        ),
        ("/v0/organizations".to_string(), &first.token),
        ("/v0/organizations/someone-else/members".to_string(), &user),
    ] {
        let (status, body) = status_of(
            request(&http, &roost, Method::GET, &path, token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
    }

    // The same names, different rows.
    fill(&http, &roost, &first, 3).await;
    fill(&http, &roost, &second, 2).await;
    let mine = |tenant: &Tenant, n: i64| vec![json!({ "who": tenant.name, "c": n })];
    assert_eq!(
        counts(&http, &roost, &first.token).await,
        (mine(&first, 3), mine(&first, 3))
    );
    assert_eq!(
        counts(&http, &roost, &second.token).await,
        (mine(&second, 2), mine(&second, 2))
    );

    // Ids and tables of the other tenant lead nowhere.
    let ds_of = |tenant: &Tenant| {
        let http = http.clone();
        let token = tenant.token.clone();
        let url = roost.url("/v0/datasources/events");
        async move { ok_json(http.get(url).bearer_auth(token).send().await.unwrap()).await }
    };
    let (first_ds, second_ds) = (ds_of(&first).await, ds_of(&second).await);
    assert_ne!(first_ds["id"], second_ds["id"]);
    let pipe_id = |tenant: &Tenant| {
        let http = http.clone();
        let token = tenant.token.clone();
        let url = roost.url("/v0/pipes/counts");
        async move {
            ok_json(http.get(url).bearer_auth(token).send().await.unwrap()).await["id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let (first_pipe, second_pipe) = (pipe_id(&first).await, pipe_id(&second).await);
    assert_ne!(first_pipe, second_pipe);
    let tokens_of = |tenant: &Tenant| {
        let http = http.clone();
        let token = tenant.token.clone();
        let url = roost.url("/v0/tokens");
        async move { ok_json(http.get(url).bearer_auth(token).send().await.unwrap()).await }
    };
    for (me, other, other_ds, other_pipe) in [
        (&first, &second, &second_ds, &second_pipe),
        (&second, &first, &first_ds, &first_pipe),
    ] {
        let listed = ok_json(
            request(&http, &roost, Method::GET, "/v0/datasources", &me.token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        let ids: Vec<&Value> = listed["datasources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| &d["id"])
            .collect();
        assert!(!ids.contains(&&other_ds["id"]), "{listed}");
        let pipes = ok_json(
            request(&http, &roost, Method::GET, "/v0/pipes", &me.token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert!(!pipes.to_string().contains(other_pipe.as_str()), "{pipes}");
        let other_tokens = tokens_of(other).await;
        let my_tokens = tokens_of(me).await.to_string();
        for token in other_tokens["tokens"].as_array().unwrap() {
            assert!(!my_tokens.contains(token["token"].as_str().unwrap()));
            assert!(!my_tokens.contains(token["id"].as_str().unwrap()));
            let path = format!("/v0/tokens/{}", token["id"].as_str().unwrap());
            let (status, body) = status_of(
                request(&http, &roost, Method::GET, &path, &me.token)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
            let refresh = format!("{path}/refresh");
            let (status, _) = status_of(
                request(&http, &roost, Method::POST, &refresh, &me.token)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{refresh}");
        }
        let other_database = format!("w_{}", other.id.replace('-', ""));
        let other_table = other_ds["id"].as_str().unwrap();
        for path in [
            format!("/v0/datasources/{other_table}"),
            format!("/v0/pipes/{other_pipe}"),
            format!("/v0/pipes/{other_pipe}.json"),
            format!("/v0/workspaces/{}", other.id),
        ] {
            let (status, body) = status_of(
                request(&http, &roost, Method::GET, &path, &me.token)
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert!(
                status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED,
                "{path}: {status} {body}"
            );
        }
        for sql in [
            format!("SELECT count() FROM {other_database}.{other_table}"),
            format!("SELECT count() FROM `{other_database}`.`{other_table}`"),
            format!("SELECT count() FROM {other_table}"),
        ] {
            let (status, body) = status_of(
                request(&http, &roost, Method::GET, "/v0/sql", &me.token)
                    .query(&[("q", sql.as_str())])
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert!(status.is_client_error(), "{sql}: {status} {body}");
            assert!(
                !body.contains(&format!("\"who\":\"{}\"", other.name)),
                "{sql}: {body}"
            );
        }
        let (status, _) = status_of(
            request(
                &http,
                &roost,
                Method::DELETE,
                &format!("/v0/datasources/{other_table}"),
                &me.token,
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    // Appending goes to the caller's own data source only.
    let response = request(
        &http,
        &roost,
        Method::POST,
        "/v0/events?name=events&wait=true",
        &second.token,
    )
    .body("{\"who\":\"second\",\"v\":9}\n")
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(counts(&http, &roost, &first.token).await.0, mine(&first, 3));
    assert_eq!(
        counts(&http, &roost, &second.token).await.0,
        mine(&second, 3)
    );

    // JWTs: one signed by a workspace reads that workspace; claims naming the other workspace but
    // signed with this workspace's admin token are refused.
    let in_an_hour = chrono_now() + 3600;
    let claims = |workspace: &str| jwt::Claims {
        workspace_id: workspace.to_string(),
        name: "reader".into(),
        exp: in_an_hour,
        scopes: vec![jwt::ClaimScope {
            kind: "PIPES:READ".into(),
            resource: "counts".into(),
            fixed_params: None,
            filter: None,
        }],
        limits: None,
    };
    let own = jwt::sign(&claims(&second.id), &second.token);
    let endpoint = ok_json(
        request(&http, &roost, Method::GET, "/v0/pipes/counts.json", &own)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(endpoint["data"], json!(mine(&second, 3)));
    for (what, forged) in [
        (
            "signed by second for first",
            jwt::sign(&claims(&first.id), &second.token),
        ),
        (
            "signed by first for second",
            jwt::sign(&claims(&second.id), &first.token),
        ),
    ] {
        let (status, body) = status_of(
            request(&http, &roost, Method::GET, "/v0/pipes/counts.json", &forged)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {body}");
    }

    // The user token manages workspaces but reads and writes no data.
    for (method, path) in [
        (Method::GET, "/v0/sql?q=SELECT+1"),
        (Method::GET, "/v0/datasources"),
        (Method::GET, "/v0/pipes"),
        (Method::GET, "/v0/pipes/counts.json"),
        (Method::GET, "/v0/tokens"),
        (Method::POST, "/v0/events?name=events"),
    ] {
        let (status, body) = status_of(
            request(&http, &roost, method, path, &user)
                .body("{\"who\":\"user\",\"v\":1}")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
    }

    // Deleting: not with a workspace token, never the default workspace; the deleted workspace's
    // tokens stop working and its database is dropped; the other keeps its rows.
    let metadata = roost
        .data_dir()
        .join("engine")
        .join("metadata")
        .join(format!("w_{}.sql", second.id.replace('-', "")));
    assert!(
        metadata.exists(),
        "{} exists before the delete",
        metadata.display()
    );
    let (status, _) = status_of(
        request(
            &http,
            &roost,
            Method::DELETE,
            "/v1/workspaces/second",
            &second.token,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = status_of(
        request(
            &http,
            &roost,
            Method::DELETE,
            &format!("/v1/workspaces/{}", first.id),
            &user,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let response = request(
        &http,
        &roost,
        Method::DELETE,
        "/v1/workspaces/second?hard_delete_confirmation=yes",
        &user,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, _) = status_of(
        request(&http, &roost, Method::GET, "/v0/datasources", &second.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = status_of(
        request(&http, &roost, Method::GET, "/v0/pipes/counts.json", &own)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "its JWTs too");
    assert!(!metadata.exists(), "the database is dropped");
    assert_eq!(
        counts(&http, &roost, &first.token).await,
        (mine(&first, 3), mine(&first, 3))
    );
    let listed = ok_json(
        request(&http, &roost, Method::GET, "/v1/user/workspaces", &user)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        listed["workspaces"].as_array().unwrap().len(),
        1,
        "{listed}"
    );
    let (status, _) = status_of(
        request(
            &http,
            &roost,
            Method::DELETE,
            "/v1/workspaces/second",
            &user,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A workspace of the same name again starts empty.
    let again = ok_json(
        request(
            &http,
            &roost,
            Method::POST,
            "/v1/workspaces?name=second",
            &user,
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    let listed = ok_json(
        request(
            &http,
            &roost,
            Method::GET,
            "/v0/datasources",
            again["token"].as_str().unwrap(),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(listed["datasources"], json!([]));
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Sends `send` until a 429 comes back (bounded), checking the headers on every answer. Returns
/// the answers before the 429 and the 429's headers and body.
async fn until_limited<F, Fut>(
    limit: u64,
    mut send: F,
) -> (usize, reqwest::header::HeaderMap, String)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    for passed in 0..50 {
        let response = send().await;
        let headers = response.headers().clone();
        let number = |name: &str| {
            headers
                .get(name)
                .unwrap_or_else(|| panic!("no {name}"))
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        };
        assert_eq!(number("x-ratelimit-limit"), limit);
        assert!(number("x-ratelimit-remaining") < limit);
        assert_eq!(number("x-ratelimit-reset"), 1);
        let status = response.status();
        let body = response.text().await.unwrap();
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(number("x-ratelimit-remaining"), 0);
            assert_eq!(number("retry-after"), 1);
            return (passed, headers, body);
        }
        assert!(status.is_success(), "{status}: {body}");
        assert!(headers.get("retry-after").is_none());
    }
    panic!("no 429 after 50 requests");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_events_api_and_jwts_answer_429_past_their_limits() {
    let roost = RoostLocal::start_with_env(
        env!("CARGO_BIN_EXE_roost"),
        &[
            ("ROOST_EVENTS_RPS", "3"),
            ("ROOST_EVENTS_BYTES_PER_SECOND", "2000"),
        ],
    )
    .await
    .expect("roost local starts");
    let http = client();
    let admin = roost.tokens.workspace_admin.clone();
    for name in ["events", "other", "big"] {
        ok_json(
            request(&http, &roost, Method::POST, "/v0/datasources", &admin)
                .form(&[("name", name), ("schema", SCHEMA)])
                .send()
                .await
                .unwrap(),
        )
        .await;
    }

    // Requests per second per data source: 3 pass in a window, then 429 with Retry-After.
    let append = |name: &'static str, body: String| {
        let builder = request(
            &http,
            &roost,
            Method::POST,
            &format!("/v0/events?name={name}"),
            &admin,
        )
        .body(body);
        async move { builder.send().await.unwrap() }
    };
    let (passed, _, body) =
        until_limited(3, || append("events", "{\"who\":\"a\",\"v\":1}\n".into())).await;
    assert!((1..=3).contains(&passed), "{passed} passed");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("3 requests per second"),
        "{body}"
    );
    // Another data source has its own capacity.
    let response = append("other", "{\"who\":\"a\",\"v\":1}\n".into()).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    // An error answer carries the headers as well.
    let response = request(
        &http,
        &roost,
        Method::POST,
        "/v0/events?name=other&format=csv",
        &admin,
    )
    .body("x")
    .send()
    .await
    .unwrap();
    assert!(response.status().is_client_error());
    assert_eq!(response.headers()["x-ratelimit-limit"], "3");
    // The next window takes requests again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = append("events", "{\"who\":\"a\",\"v\":1}\n".into()).await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(response.headers()["x-ratelimit-remaining"], "2");

    // Bytes per second: 1,500 bytes pass alone; a second 1,500 in the same window is refused.
    let row = format!("{{\"who\":\"{}\",\"v\":1}}\n", "x".repeat(1483));
    assert_eq!(row.len(), 1500);
    let (_, headers, body) = until_limited(3, || append("big", row.clone())).await;
    assert!(body.contains("2000 bytes per second"), "{body}");
    assert_eq!(headers["retry-after"], "1");

    // A JWT with limits.rps: 429 with the same headers past it.
    let pipe = json!({ "name": "counts", "nodes": [{ "name": "counts_0", "sql": "SELECT count() AS c FROM events", "type": "endpoint" }] });
    ok_json(
        request(&http, &roost, Method::POST, "/v0/pipes", &admin)
            .json(&pipe)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let expiration = (chrono_now() + 3600).to_string();
    let token = ok_json(
        request(&http, &roost, Method::POST, "/v0/tokens", &admin)
            .query(&[("name", "limited"), ("expiration_time", expiration.as_str())])
            .body(json!({ "scopes": [{ "type": "PIPES:READ", "resource": "counts" }], "limits": { "rps": 2 } }).to_string())
            .send()
            .await
            .unwrap(),
    )
    .await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let read = || {
        let builder = request(&http, &roost, Method::GET, "/v0/pipes/counts.json", &token);
        async move { builder.send().await.unwrap() }
    };
    let (passed, _, body) = until_limited(2, read).await;
    assert!((1..=2).contains(&passed), "{passed} passed");
    assert!(body.contains("2 requests per second"), "{body}");
    // Static tokens have no such limit.
    for _ in 0..5 {
        let response = request(&http, &roost, Method::GET, "/v0/pipes/counts.json", &admin)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers().get("x-ratelimit-limit").is_none());
    }
}
