//! Authentication, the shape of every error, restarts, and hostile input.

use std::time::Duration;

use serde_json::json;

use crate::{Api, error, file_form, gzip, json, ok_json};

#[tokio::test]
async fn tokens_auth_and_error_shapes() {
    let api = Api::start().await;

    // Tinybird Local's /tokens needs no token and reveals the three.
    let tokens = ok_json(api.http.get(api.url("/tokens")).send().await.unwrap()).await;
    for key in ["user_token", "admin_token", "workspace_admin_token"] {
        assert!(
            tokens[key].as_str().is_some_and(|t| !t.is_empty()),
            "{key} in {tokens}"
        );
    }
    assert_eq!(tokens["workspace_admin_token"], api.token.as_str());

    // The workspace of a token.
    let workspace = ok_json(api.get("/v0/workspace").send().await.unwrap()).await;
    for key in ["id", "name", "user_email", "user_id"] {
        assert!(
            workspace[key].as_str().is_some_and(|v| !v.is_empty()),
            "{key} in {workspace}"
        );
    }
    assert_eq!(workspace["scope"], "admin");

    // Both workspace tokens work, by header and by ?token=; unknown parameters are ignored.
    for token in [
        tokens["admin_token"].as_str().unwrap(),
        tokens["workspace_admin_token"].as_str().unwrap(),
    ] {
        let by_header = api
            .http
            .get(api.url("/v0/datasources?unknown=1&x=y"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(ok_json(by_header).await, json!({"datasources": []}));
        let by_query = api
            .http
            .get(api.url("/v0/datasources"))
            .query(&[("token", token), ("whatever", "1")])
            .send()
            .await
            .unwrap();
        assert_eq!(ok_json(by_query).await, json!({"datasources": []}));
    }
    let sql = api.http.get(api.url("/v0/sql")).query(&[
        ("q", "SELECT 1 AS one"),
        ("token", api.token.as_str()),
        ("pipeline", "x"),
    ]);
    assert_eq!(
        ok_json(sql.send().await.unwrap()).await["data"],
        json!([{"one": 1}])
    );

    // No token, a wrong token, a malformed header: 403 JSON on every route.
    let routes = [
        ("GET", "/v0/datasources"),
        ("POST", "/v0/datasources?name=x&schema=a%20Int32"),
        ("GET", "/v0/datasources/x"),
        ("DELETE", "/v0/datasources/x"),
        ("POST", "/v0/events?name=x"),
        ("GET", "/v0/sql?q=SELECT%201"),
        ("GET", "/v0/workspace"),
    ];
    for (method, path) in routes {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let request = || {
            api.http
                .request(method.clone(), api.url(path))
                .body("{\"a\":1}")
        };
        error(request().send().await.unwrap(), 403).await;
        error(
            request().bearer_auth("p.not-a-token").send().await.unwrap(),
            403,
        )
        .await;
        error(
            request()
                .header("Authorization", "Basic dXNlcjpwYXNz")
                .send()
                .await
                .unwrap(),
            403,
        )
        .await;
        error(
            request()
                .bearer_auth(&tokens["user_token"].as_str().unwrap()[..20])
                .send()
                .await
                .unwrap(),
            403,
        )
        .await;
        let separator = if path.contains('?') { '&' } else { '?' };
        let url = api.url(&format!("{path}{separator}token=wrong"));
        error(
            api.http.request(method.clone(), url).send().await.unwrap(),
            403,
        )
        .await;
    }
    // Nothing was created by the refused requests.
    assert_eq!(
        ok_json(api.get("/v0/datasources").send().await.unwrap()).await,
        json!({"datasources": []})
    );

    // The user token manages workspaces; it is not a workspace token.
    let response = api
        .http
        .get(api.url("/v0/datasources"))
        .bearer_auth(tokens["user_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    error(response, 403).await;

    // Unknown routes and methods: JSON too.
    let message = error(api.get("/v0/nothing/here").send().await.unwrap(), 404).await;
    assert!(message.contains("/v0/nothing/here"), "{message}");
    error(api.http.get(api.url("/nothing")).send().await.unwrap(), 404).await;
    error(
        api.http
            .patch(api.url("/v0/datasources"))
            .bearer_auth(&api.token)
            .send()
            .await
            .unwrap(),
        405,
    )
    .await;
    error(
        api.http
            .delete(api.url("/v0/sql"))
            .bearer_auth(&api.token)
            .send()
            .await
            .unwrap(),
        405,
    )
    .await;
}

/// Ctrl-C ends `roost local` with status 0 (chDB's static destructors, which could crash a
/// process on its way out, never run), and the rows it took are there after a new start.
#[tokio::test]
async fn ctrl_c_ends_roost_local_cleanly_and_keeps_its_rows() {
    let mut api = Api::start().await;
    api.events("interrupted", "{\"a\":1}\n{\"a\":2}\n").await;
    let status = api
        .roost
        .interrupt()
        .await
        .expect("roost local ends on SIGINT");
    assert!(status.success(), "{status}; log:\n{}", api.roost.log());
    let api = Api::on(api.roost.restart().await.expect("restart"));
    assert_eq!(api.count("interrupted").await, 2);
}

#[tokio::test]
async fn a_restart_keeps_tokens_data_sources_and_rows() {
    let api = Api::start().await;
    ok_json(
        api.post("/v0/datasources")
            .form(&[
                ("name", "kept"),
                ("schema", "`a` Int32 `json:$.a`, `b` String `json:$.b`"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    ok_json(
        api.post("/v0/datasources?name=kept&mode=append")
            .multipart(file_form("csv", "1,x\n2,y\n"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    api.events(
        "kept",
        "{\"a\":3,\"b\":\"z\"}\n{\"a\":\"bad\",\"b\":\"q\"}\n",
    )
    .await;
    api.events("guessed", "{\"k\":\"v\"}\n").await;
    let before = api.roost.tokens.clone();
    let id = ok_json(api.get("/v0/datasources/kept").send().await.unwrap()).await["id"].clone();

    let roost = api.roost.restart().await.expect("restart");
    let api = Api::on(roost);
    assert_eq!(api.roost.tokens.user, before.user);
    assert_eq!(api.roost.tokens.admin, before.admin);
    assert_eq!(api.roost.tokens.workspace_admin, before.workspace_admin);

    let listed = ok_json(api.get("/v0/datasources").send().await.unwrap()).await;
    let mut names: Vec<&str> = listed["datasources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["guessed", "kept"]);
    let kept = ok_json(api.get("/v0/datasources/kept").send().await.unwrap()).await;
    assert_eq!(kept["id"], id);
    assert_eq!(kept["statistics"]["row_count"], json!(3));
    assert_eq!(
        api.rows("SELECT a, b FROM kept ORDER BY a").await,
        vec![
            json!({"a": 1, "b": "x"}),
            json!({"a": 2, "b": "y"}),
            json!({"a": 3, "b": "z"})
        ]
    );
    assert_eq!(api.count("kept_quarantine").await, 1);
    assert_eq!(
        api.rows("SELECT k FROM guessed").await,
        vec![json!({"k": "v"})]
    );

    // Still writable after the restart, and a name taken before is still taken.
    api.events("kept", "{\"a\":4,\"b\":\"w\"}\n").await;
    assert_eq!(api.count("kept").await, 4);
    error(
        api.post("/v0/datasources")
            .form(&[("name", "kept"), ("schema", "a Int32")])
            .send()
            .await
            .unwrap(),
        409,
    )
    .await;
}

#[tokio::test]
async fn hostile_input_gets_a_4xx_and_the_server_survives() {
    let api = Api::start().await;
    api.events("target", "{\"a\":1,\"s\":\"x\"}\n").await;
    let garbage: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let deep = format!(
        "{{\"a\":{}1{}}}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let huge_line = format!("{{\"a\":1,\"s\":\"{}\"}}", "x".repeat(8 * 1024 * 1024));
    let multipart_type = "multipart/form-data; boundary=XyZ";

    let requests = vec![
        ("garbage events, new", api.post("/v0/events?name=garbage").body(garbage.clone())),
        ("garbage events, existing", api.post("/v0/events?name=target").body(garbage.clone())),
        ("empty events, new", api.post("/v0/events?name=empty").body("")),
        ("empty events, existing", api.post("/v0/events?name=target").body("")),
        ("deep JSON", api.post("/v0/events?name=target").body(deep.clone())),
        ("deep JSON, new", api.post("/v0/events?name=deep").body(deep)),
        ("huge line", api.post("/v0/events?name=target").body(huge_line.clone())),
        ("huge line, new", api.post("/v0/events?name=huge").body(huge_line)),
        ("only newlines", api.post("/v0/events?name=target").body("\n\n\n\r\n")),
        ("JSON not an object", api.post("/v0/events?name=target").body("[1,2]\n\"s\"\n3\nnull\n")),
        ("giant numbers", api.post("/v0/events?name=target").body("{\"a\":1e999999,\"s\":1}\n{\"a\":-99999999999999999999999999}\n")),
        ("NUL and invalid UTF-8", api.post("/v0/events?name=target").body(b"{\"a\":1,\"s\":\"\x00\xff\xfe\"}\n".to_vec())),
        ("bad gzip", api.post("/v0/events?name=target").header("Content-Encoding", "gzip").body(garbage.clone())),
        ("truncated gzip", api.post("/v0/events?name=target").header("Content-Encoding", "gzip").body(gzip(b"{\"a\":1}\n")[..12].to_vec())),
        ("empty create", api.post("/v0/datasources").body("")),
        ("empty form", api.post("/v0/datasources").form(&[("name", "")])),
        ("garbage csv create", api.post("/v0/datasources?name=gcsv").multipart(file_form("csv", garbage.clone()))),
        ("garbage parquet create", api.post("/v0/datasources?name=gpq&format=parquet").multipart(file_form("parquet", garbage.clone()))),
        ("garbage parquet append", api.post("/v0/datasources?name=target&mode=append&format=parquet").multipart(file_form("parquet", garbage.clone()))),
        ("garbage csv append", api.post("/v0/datasources?name=target&mode=append&format=csv").multipart(file_form("csv", garbage.clone()))),
        ("unbalanced quotes csv", api.post("/v0/datasources?name=target&mode=append&format=csv").multipart(file_form("csv", "1,\"open\n2,x\n"))),
        ("garbage multipart", api.post("/v0/datasources?name=m").header("Content-Type", multipart_type).body(garbage.clone())),
        ("multipart without boundary", api.post("/v0/datasources?name=m").header("Content-Type", "multipart/form-data").body("--x\r\n")),
        (
            "truncated multipart",
            api.post("/v0/datasources?name=m")
                .header("Content-Type", multipart_type)
                .body("--XyZ\r\nContent-Disposition: form-data; name=\"csv\"; filename=\"a.csv\"\r\n\r\n1,2\n"),
        ),
        ("invalid UTF-8 SQL body", api.post("/v0/sql").body(b"SELECT '\xff\xfe'".to_vec())),
        ("invalid UTF-8 SQL query", api.http.get(api.url("/v0/sql?q=SELECT%20%27%FF%FE%27")).bearer_auth(&api.token)),
        ("empty SQL", api.post("/v0/sql").body("")),
        ("NUL in SQL", api.get("/v0/sql").query(&[("q", "SELECT 1\0")])),
        ("deep SQL", api.post("/v0/sql").body(format!("SELECT {}1{}", "(".repeat(20_000), ")".repeat(20_000)))),
        ("long SQL", api.post("/v0/sql").body(format!("SELECT {}", vec!["1"; 50_000].join("+")))),
        ("long query string", api.get("/v0/sql").query(&[("q", format!("SELECT '{}'", "x".repeat(16 * 1024)))])),
        ("bad JSON SQL", api.post("/v0/sql").header("Content-Type", "application/json").body("{\"q\":")),
        ("long name", api.post("/v0/datasources").form(&[("name", "a".repeat(10_000).as_str()), ("schema", "a Int32")])),
        ("odd path", api.get("/v0/datasources/%00%ff..%2f")),
        ("huge schema", api.post("/v0/datasources").form(&[("name", "wide"), ("schema", format!("{}(", "Array(".repeat(10_000)).as_str())])),
    ];
    for (what, request) in requests {
        let response = request
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let status = response.status();
        if !status.is_success() {
            let (_, body) = json(response).await;
            assert!(status.is_client_error(), "{what}: {status} {body}");
            assert!(body["error"].is_string(), "{what}: {body}");
        }
        assert!(
            api.alive().await,
            "{what} killed the server:\n{}",
            api.roost.log()
        );
    }

    // It still answers, and the data source it had is intact.
    assert!(api.count("target").await >= 1);
    assert_eq!(
        api.rows("SELECT a FROM target WHERE s = 'x'").await,
        vec![json!({"a": 1})]
    );
}
