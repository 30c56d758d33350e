//! The released Tinybird CLI's token commands against a real `roost local`, as a new user would
//! run them: `TOKEN` lines in pushed .datasource and .pipe files, `tb token ls`, `scopes`,
//! `create static` (with a row filter), `create jwt` (with fixed params), `refresh` and `rm`; each
//! token then used over HTTP to check it grants what it says.

use roost_testkit::RoostLocal;
use roost_testkit::tb::{tb, tb_ok};
use serde_json::Value;

const DATASOURCE: &str = r#"TOKEN "events_append" APPEND

SCHEMA >
    `country` String `json:$.country`,
    `amount` Int32 `json:$.amount`
"#;

const PIPE: &str = r#"TOKEN "endpoint_read" READ

NODE by_country_0
SQL >
    %
    SELECT country, sum(amount) AS total
    FROM events
    WHERE country = {{ String(country, 'ES') }}
    GROUP BY country

TYPE endpoint
"#;

/// An HTTP client on the server with one token.
struct As<'a> {
    roost: &'a RoostLocal,
    http: reqwest::Client,
}

impl As<'_> {
    async fn status(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: &str,
    ) -> (u16, Value) {
        let response = self
            .http
            .request(method, self.roost.url(path))
            .bearer_auth(token)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn token(&self, admin: &str, name: &str) -> Value {
        let (status, body) = self
            .status(
                admin,
                reqwest::Method::GET,
                &format!("/v0/tokens/{name}"),
                "",
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tb_token_commands_work_unchanged() {
    let roost = RoostLocal::start(env!("CARGO_BIN_EXE_roost"))
        .await
        .unwrap();
    let http = As {
        roost: &roost,
        http: reqwest::Client::new(),
    };
    let admin = roost.tokens.workspace_admin.clone();
    let project = tempfile::tempdir().unwrap();
    let dir = project.path();
    std::fs::create_dir_all(dir.join("datasources")).unwrap();
    std::fs::create_dir_all(dir.join("pipes")).unwrap();
    std::fs::write(dir.join("datasources/events.datasource"), DATASOURCE).unwrap();
    std::fs::write(dir.join("pipes/by_country.pipe"), PIPE).unwrap();

    tb_ok(dir, &["auth", "--host", &roost.base_url, "--token", &admin]);

    // TOKEN lines: the push creates the tokens with the scopes they name.
    let pushed = tb_ok(dir, &["push", "datasources/events.datasource"]);
    assert!(pushed.contains("'events' created"), "{pushed}");
    let pushed = tb_ok(dir, &["push", "pipes/by_country.pipe"]);
    assert!(pushed.contains("by_country"), "{pushed}");
    let append = http.token(&admin, "events_append").await;
    assert_eq!(
        append["scopes"],
        serde_json::json!([{ "type": "DATASOURCES:APPEND", "resource": "events" }])
    );
    assert_eq!(append["origin"]["type"], "DS");
    let read = http.token(&admin, "endpoint_read").await;
    assert_eq!(
        read["scopes"],
        serde_json::json!([{ "type": "PIPES:READ", "resource": "by_country" }])
    );
    assert_eq!(read["origin"]["type"], "P");

    let append_value = append["token"].as_str().unwrap().to_string();
    let read_value = read["token"].as_str().unwrap().to_string();
    let events = "{\"country\":\"ES\",\"amount\":1}\n{\"country\":\"ES\",\"amount\":2}\n{\"country\":\"FR\",\"amount\":10}\n";
    let (status, body) = http
        .status(
            &append_value,
            reqwest::Method::POST,
            "/v0/events?name=events&wait=true",
            events,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = http
        .status(
            &read_value,
            reqwest::Method::GET,
            "/v0/pipes/by_country.json?country=FR",
            "",
        )
        .await;
    assert_eq!(
        (status, &body["data"][0]["total"]),
        (200, &Value::from(10)),
        "{body}"
    );
    let (status, _) = http
        .status(
            &read_value,
            reqwest::Method::GET,
            "/v0/sql?q=SELECT+1+FROM+events",
            "",
        )
        .await;
    assert_eq!(status, 403);

    // Pushing the pipe again with --force finds its token and keeps it (value and scopes).
    // (Force-pushing a .datasource needs `sql_schema` in the data source's JSON: not yet served.)
    tb_ok(
        dir,
        &["push", "pipes/by_country.pipe", "--force", "--no-check"],
    );
    let again = http.token(&admin, "endpoint_read").await;
    assert_eq!(
        (&again["token"], &again["scopes"]),
        (&read["token"], &read["scopes"])
    );

    let listed = tb_ok(dir, &["token", "ls"]);
    for name in ["admin token", "events_append", "endpoint_read"] {
        assert!(listed.contains(name), "{name} missing from:\n{listed}");
    }
    let scopes = tb_ok(dir, &["token", "scopes", "endpoint_read"]);
    assert!(
        scopes.contains("PIPES:READ") && scopes.contains("by_country"),
        "{scopes}"
    );

    // A static token with a row filter.
    let created = tb_ok(
        dir,
        &[
            "token",
            "create",
            "static",
            "spanish",
            "--scope",
            "DATASOURCES:READ",
            "--resource",
            "events",
            "--filter",
            "country = 'ES'",
        ],
    );
    assert!(created.contains("generated successfully"), "{created}");
    let spanish = http.token(&admin, "spanish").await;
    assert_eq!(spanish["scopes"][0]["filter"], "country = 'ES'");
    let spanish_value = spanish["token"].as_str().unwrap().to_string();
    let (status, body) = http
        .status(
            &spanish_value,
            reqwest::Method::GET,
            "/v0/sql?q=SELECT+count()+AS+c,+sum(amount)+AS+s+FROM+events+FORMAT+JSON",
            "",
        )
        .await;
    assert_eq!(
        (status, &body["data"][0]["c"], &body["data"][0]["s"]),
        (200, &Value::from(2), &Value::from(3)),
        "{body}"
    );
    let listed = tb_ok(dir, &["token", "ls", "--match", "span"]);
    assert!(
        listed.contains("spanish") && !listed.contains("endpoint_read"),
        "{listed}"
    );

    // A JWT with a fixed parameter: it wins over the request's.
    let created = tb_ok(
        dir,
        &[
            "token",
            "create",
            "jwt",
            "frontend",
            "--ttl",
            "1h",
            "--scope",
            "PIPES:READ",
            "--resource",
            "by_country",
            "--fixed-params",
            "country=FR",
        ],
    );
    let jwt = created
        .lines()
        .find_map(|line| line.strip_prefix("The token is: "))
        .unwrap_or_else(|| panic!("no token in:\n{created}"))
        .trim()
        .to_string();
    let (status, body) = http
        .status(
            &jwt,
            reqwest::Method::GET,
            "/v0/pipes/by_country.json?country=ES",
            "",
        )
        .await;
    assert_eq!(
        (status, &body["data"][0]["country"]),
        (200, &Value::from("FR")),
        "{body}"
    );
    let (status, _) = http
        .status(
            &jwt,
            reqwest::Method::GET,
            "/v0/sql?q=SELECT+1+FROM+events",
            "",
        )
        .await;
    assert_eq!(status, 403);
    let listed = tb_ok(dir, &["token", "ls"]);
    assert!(
        !listed.contains("frontend"),
        "JWTs are not stored:\n{listed}"
    );

    // Refresh: a new value, the old one refused.
    let refreshed = tb_ok(dir, &["token", "refresh", "spanish", "--yes"]);
    assert!(refreshed.contains("spanish"), "{refreshed}");
    let new_value = http.token(&admin, "spanish").await["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new_value, spanish_value);
    let (status, _) = http
        .status(
            &spanish_value,
            reqwest::Method::GET,
            "/v0/sql?q=SELECT+1+FROM+events",
            "",
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = http
        .status(
            &new_value,
            reqwest::Method::GET,
            "/v0/sql?q=SELECT+1+FROM+events",
            "",
        )
        .await;
    assert_eq!(status, 200);

    // Remove: gone from the list, its value refused.
    let removed = tb_ok(dir, &["token", "rm", "spanish", "--yes"]);
    assert!(removed.contains("spanish"), "{removed}");
    let listed = tb_ok(dir, &["token", "ls"]);
    assert!(!listed.contains("spanish"), "{listed}");
    let (status, _) = http
        .status(
            &new_value,
            reqwest::Method::GET,
            "/v0/sql?q=SELECT+1+FROM+events",
            "",
        )
        .await;
    assert_eq!(status, 403);
    let (ok, text) = tb(dir, &["token", "rm", "spanish", "--yes"]);
    assert!(!ok && text.contains("spanish"), "{text}");
}
