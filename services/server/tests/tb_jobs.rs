//! Background work with the released Tinybird CLI against a real `roost local`: `tb push` of a
//! materialized pipe into an AggregatingMergeTree data source with `--populate --wait` and of a
//! copy pipe, `tb pipe copy run` with a parameter, `tb datasource delete --sql-condition`, and
//! `tb job ls/details/cancel`.

use roost_testkit::RoostLocal;
use roost_testkit::tb::{tb, tb_ok};

const SALES: &str = r#"SCHEMA >
    `ts` DateTime `json:$.ts`,
    `user` String `json:$.user`,
    `amount` Float64 `json:$.amount`

ENGINE "MergeTree"
ENGINE_PARTITION_KEY "toYYYYMM(ts)"
ENGINE_SORTING_KEY "ts"
"#;

const BY_MINUTE: &str = r#"SCHEMA >
    `minute` DateTime,
    `users` AggregateFunction(uniq, String),
    `total` AggregateFunction(sum, Float64)

ENGINE "AggregatingMergeTree"
ENGINE_SORTING_KEY "minute"
"#;

const SALES_COPY: &str = r#"SCHEMA >
    `user` String,
    `total` Float64

ENGINE "MergeTree"
ENGINE_SORTING_KEY "user"
"#;

const BY_MINUTE_MV: &str = r#"NODE agg
SQL >
    SELECT toStartOfMinute(ts) AS minute, uniqState(user) AS users, sumState(amount) AS total
    FROM sales
    GROUP BY minute

TYPE materialized
DATASOURCE by_minute
"#;

const TOTALS_COPY: &str = r#"NODE totals
SQL >
    %
    SELECT user, sum(amount) AS total FROM sales
    WHERE amount >= {{ Float64(min_amount, 0) }}
    GROUP BY user

TYPE copy
TARGET_DATASOURCE sales_copy
COPY_SCHEDULE @on-demand
COPY_MODE replace
"#;

/// `count` sales over three days and five users, amounts 0 to 9.
fn sales(from: usize, count: usize) -> String {
    (from..from + count)
        .map(|i| {
            format!(
                "{{\"ts\":\"2026-01-0{} 10:00:00\",\"user\":\"u{}\",\"amount\":{}}}\n",
                1 + i % 3,
                i % 5,
                i % 10
            )
        })
        .collect()
}

/// The single data row of a `tb sql` table: its cells.
fn cells(table: &str) -> Vec<String> {
    table
        .lines()
        .filter(|line| line.starts_with('|'))
        .nth(1)
        .unwrap_or_else(|| panic!("no data row in:\n{table}"))
        .split('|')
        .map(str::trim)
        .filter(|cell| !cell.is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn materialized_and_copy_pipes_deletes_and_jobs_work_with_the_tb_cli() {
    let roost = RoostLocal::start(env!("CARGO_BIN_EXE_roost"))
        .await
        .unwrap();
    let project = tempfile::tempdir().unwrap();
    let dir = project.path();
    for (path, text) in [
        ("datasources/sales.datasource", SALES),
        ("datasources/by_minute.datasource", BY_MINUTE),
        ("datasources/sales_copy.datasource", SALES_COPY),
        ("pipes/by_minute_mv.pipe", BY_MINUTE_MV),
        ("pipes/totals_copy.pipe", TOTALS_COPY),
        ("old_sales.ndjson", &sales(0, 600)),
        ("new_sales.ndjson", &sales(600, 400)),
    ] {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    tb_ok(
        dir,
        &[
            "auth",
            "--host",
            &roost.base_url,
            "--token",
            &roost.tokens.workspace_admin,
        ],
    );
    for datasource in ["sales", "by_minute", "sales_copy"] {
        let pushed = tb_ok(
            dir,
            &["push", &format!("datasources/{datasource}.datasource")],
        );
        assert!(
            pushed.contains(&format!("'{datasource}' created")),
            "{pushed}"
        );
    }
    tb_ok(dir, &["datasource", "append", "sales", "old_sales.ndjson"]);

    // The view backfills the rows already there, then keeps up with new ones.
    let pushed = tb_ok(
        dir,
        &["push", "pipes/by_minute_mv.pipe", "--populate", "--wait"],
    );
    assert!(
        pushed.contains("populateview") && pushed.contains("'by_minute_mv' created"),
        "{pushed}"
    );
    tb_ok(dir, &["datasource", "append", "sales", "new_sales.ndjson"]);
    let merged = tb_ok(
        dir,
        &[
            "sql",
            "SELECT uniqMerge(users), sumMerge(total) FROM by_minute",
        ],
    );
    let direct = tb_ok(dir, &["sql", "SELECT uniq(user), sum(amount) FROM sales"]);
    assert_eq!(cells(&merged), cells(&direct));
    assert_eq!(cells(&direct), ["5", "4500"]);

    // A copy run now, with a template parameter, waited for.
    let pushed = tb_ok(dir, &["push", "pipes/totals_copy.pipe"]);
    assert!(pushed.contains("'totals_copy' created"), "{pushed}");
    let copied = tb_ok(
        dir,
        &[
            "pipe",
            "copy",
            "run",
            "totals_copy",
            "--param",
            "min_amount=5",
            "--wait",
            "--yes",
        ],
    );
    assert!(copied.contains("Data copied to 'sales_copy'"), "{copied}");
    let totals = tb_ok(dir, &["sql", "SELECT count(), sum(total) FROM sales_copy"]);
    assert_eq!(cells(&totals), ["5", "3500"]);

    // Rows deleted by condition, as a job the CLI waits for.
    let deleted = tb_ok(
        dir,
        &[
            "datasource",
            "delete",
            "sales",
            "--sql-condition",
            "amount = 0",
            "--yes",
            "--wait",
        ],
    );
    assert!(deleted.contains("rows deleted"), "{deleted}");
    let left = tb_ok(
        dir,
        &["sql", "SELECT count(), countIf(amount = 0) FROM sales"],
    );
    assert_eq!(cells(&left), ["900", "0"]);

    // Every job shows in `tb job ls` and in detail.
    let listed = tb_ok(dir, &["job", "ls"]);
    for kind in ["populateview", "copy", "delete_data"] {
        assert!(listed.contains(kind), "{kind} missing from:\n{listed}");
    }
    let client = reqwest::Client::new();
    let jobs: serde_json::Value = client
        .get(roost.url("/v0/jobs?kind=copy"))
        .bearer_auth(&roost.tokens.workspace_admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let copy_id = jobs["jobs"][0]["id"]
        .as_str()
        .expect("a copy job")
        .to_string();
    let details = tb_ok(dir, &["job", "details", &copy_id]);
    assert!(
        details.contains("status: done") && details.contains("min_amount"),
        "{details}"
    );
    let (ok, refused) = tb(dir, &["job", "cancel", &copy_id]);
    assert!(!ok && refused.contains("cannot be cancelled"), "{refused}");
}
