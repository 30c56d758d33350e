//! The released Tinybird CLI (`tinybird-cli` from PyPI, installed by `make clients`) against a real
//! `roost local`, driven as a new user would: auth, push a .datasource with jsonpaths and an
//! engine, append NDJSON and CSV files, query, list, truncate, remove.

use roost_testkit::RoostLocal;
use roost_testkit::tb::{tb, tb_ok};

const DATASOURCE: &str = r#"DESCRIPTION >
    Orders placed in the shop

SCHEMA >
    `timestamp` DateTime `json:$.timestamp`,
    `order_id` String `json:$.id`,
    `user_id` String `json:$.user.id`,
    `amount` Float64 `json:$.amount`,
    `country` LowCardinality(String) `json:$.country` DEFAULT 'unknown',
    `tags` Array(String) `json:$.tags[:]`

ENGINE "MergeTree"
ENGINE_PARTITION_KEY "toYYYYMM(timestamp)"
ENGINE_SORTING_KEY "timestamp, order_id"
ENGINE_TTL "timestamp + toIntervalDay(3650)"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_tb_cli_works_unchanged() {
    let roost = RoostLocal::start(env!("CARGO_BIN_EXE_roost"))
        .await
        .unwrap();
    let project = tempfile::tempdir().unwrap();
    let dir = project.path();
    std::fs::create_dir_all(dir.join("datasources")).unwrap();
    std::fs::write(dir.join("datasources/orders.datasource"), DATASOURCE).unwrap();
    std::fs::write(
        dir.join("orders.ndjson"),
        concat!(
            r#"{"timestamp":"2026-01-01 10:00:00","id":"o1","user":{"id":"u1"},"amount":3.5,"country":"ES","tags":["a","b"]}"#,
            "\n",
            r#"{"timestamp":"2026-01-02 11:00:00","id":"o2","user":{"id":"u1"},"amount":7}"#,
            "\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("orders.csv"), "timestamp,order_id,user_id,amount,country,tags\n2026-01-03 10:00:00,o3,u2,1.25,FR,\"['x']\"\n").unwrap();

    let auth = tb_ok(
        dir,
        &[
            "auth",
            "--host",
            &roost.base_url,
            "--token",
            &roost.tokens.workspace_admin,
        ],
    );
    assert!(auth.contains("Auth successful"), "{auth}");

    let pushed = tb_ok(dir, &["push", "datasources/orders.datasource"]);
    assert!(pushed.contains("'orders' created"), "{pushed}");

    let appended = tb_ok(dir, &["datasource", "append", "orders", "orders.ndjson"]);
    assert!(appended.contains("Appended 2 new rows"), "{appended}");
    let appended = tb_ok(dir, &["datasource", "append", "orders", "orders.csv"]);
    assert!(
        appended.contains("Appended 1 new rows") && appended.contains("Total rows in orders: 3"),
        "{appended}"
    );

    let csv = tb_ok(
        dir,
        &[
            "sql",
            "SELECT order_id, user_id, amount, country, tags FROM orders ORDER BY order_id",
            "--format",
            "csv",
        ],
    );
    for line in [
        "\"o1\",\"u1\",3.5,\"ES\",\"['a','b']\"",
        "\"o2\",\"u1\",7,\"unknown\",\"[]\"",
        "\"o3\",\"u2\",1.25,\"FR\",\"['x']\"",
    ] {
        assert!(csv.contains(line), "missing {line} in:\n{csv}");
    }
    let table = tb_ok(
        dir,
        &[
            "sql",
            "SELECT user_id, sum(amount) AS total FROM orders GROUP BY user_id ORDER BY user_id",
        ],
    );
    assert!(table.contains("10.5") && table.contains("1.25"), "{table}");

    let listed = tb_ok(dir, &["datasource", "ls"]);
    assert!(
        listed.contains("name: orders") && listed.contains("row_count: 3"),
        "{listed}"
    );

    // Re-pushing an unchanged definition is refused as Tinybird refuses it; a new column at the
    // end is applied as an ALTER the CLI shows with the data source's name.
    let again = tb_ok(
        dir,
        &["push", "datasources/orders.datasource", "--force", "--yes"],
    );
    assert!(again.contains("already exists"), "{again}");
    let extended = DATASOURCE.replace(
        "`tags` Array(String) `json:$.tags[:]`",
        "`tags` Array(String) `json:$.tags[:]`,\n    `channel` Nullable(String) `json:$.channel`",
    );
    std::fs::write(dir.join("datasources/orders.datasource"), extended).unwrap();
    let altered = tb_ok(
        dir,
        &["push", "datasources/orders.datasource", "--force", "--yes"],
    );
    assert!(
        altered.contains("ALTER TABLE `orders` ADD COLUMN `channel` Nullable(String)")
            && altered.contains("correctly updated"),
        "{altered}"
    );
    let channel = tb_ok(
        dir,
        &[
            "sql",
            "SELECT count() AS c FROM orders WHERE channel IS NULL",
            "--format",
            "csv",
        ],
    );
    assert!(
        channel.contains("\n3\n") || channel.trim_end().ends_with('3'),
        "{channel}"
    );

    // A row that does not fit goes to quarantine and the CLI reports it, as with Tinybird.
    std::fs::write(dir.join("bad.ndjson"), "{\"timestamp\":\"2026-01-04 00:00:00\",\"id\":\"o4\",\"user\":{\"id\":\"u3\"},\"amount\":\"lots\"}\n").unwrap();
    let (ok, text) = tb(dir, &["datasource", "append", "orders", "bad.ndjson"]);
    assert!(!ok && text.contains("quarantine"), "{text}");
    let quarantined = tb_ok(
        dir,
        &[
            "sql",
            "SELECT order_id, c__error_column FROM orders_quarantine",
            "--format",
            "csv",
        ],
    );
    assert!(
        quarantined.contains("\"o4\",\"['amount']\""),
        "{quarantined}"
    );

    // Replacing: everything, then only the rows a condition selects.
    let order = |id: &str, country: &str| {
        format!(
            "{{\"timestamp\":\"2026-02-01 00:00:00\",\"id\":\"{id}\",\"user\":{{\"id\":\"u9\"}},\"amount\":1,\"country\":\"{country}\"}}\n"
        )
    };
    std::fs::write(
        dir.join("all.ndjson"),
        [order("r1", "ES"), order("r2", "ES"), order("r3", "FR")].concat(),
    )
    .unwrap();
    std::fs::write(dir.join("spain.ndjson"), order("r4", "ES")).unwrap();
    let replaced = tb_ok(dir, &["datasource", "replace", "orders", "all.ndjson"]);
    assert!(replaced.contains("replaced"), "{replaced}");
    let ids = |text: String| -> Vec<String> {
        text.lines()
            .filter(|line| line.starts_with("\"r"))
            .map(|line| line.trim_matches('"').to_string())
            .collect()
    };
    let all_ids = || {
        tb_ok(
            dir,
            &[
                "sql",
                "SELECT order_id FROM orders ORDER BY order_id",
                "--format",
                "csv",
            ],
        )
    };
    assert_eq!(ids(all_ids()), ["r1", "r2", "r3"]);
    tb_ok(
        dir,
        &[
            "datasource",
            "replace",
            "orders",
            "spain.ndjson",
            "--sql-condition",
            "country = 'ES'",
        ],
    );
    assert_eq!(ids(all_ids()), ["r3", "r4"]);

    let truncated = tb_ok(dir, &["datasource", "truncate", "orders", "--yes"]);
    assert!(truncated.contains("truncated"), "{truncated}");
    let count = tb_ok(
        dir,
        &["sql", "SELECT count() AS c FROM orders", "--format", "csv"],
    );
    assert!(
        count.contains("\n0\n") || count.trim_end().ends_with('0'),
        "{count}"
    );

    let removed = tb_ok(dir, &["datasource", "rm", "orders", "--yes"]);
    assert!(removed.contains("deleted"), "{removed}");
    let listed = tb_ok(dir, &["datasource", "ls"]);
    assert!(!listed.contains("name: orders"), "{listed}");
}
