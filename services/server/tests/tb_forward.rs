//! The Forward `tb` (PyPI `tinybird`, installed by `make clients`) in local mode against a real
//! `roost local`, as a new user runs it: `TB_LOCAL_HOST=127.0.0.1 TB_LOCAL_PORT=<port> tb build`
//! in a project folder with one .datasource and one .pipe.
//!
//! The CLI first reads `/tokens`, lists the user's workspaces (`GET /v1/user/workspaces` with the
//! user's admin token), creates its build workspace (`POST /v1/workspaces?name=` with the user
//! token) and takes that workspace's token; all of that must work. It then sends the project to
//! `POST /v1/build`, Forward's server-side build of datafiles, which roost does not have yet: while
//! it is missing, the test checks everything up to it and says plainly that the build is skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

use roost_testkit::RoostLocal;
use serde_json::Value;

const DATASOURCE: &str = r#"SCHEMA >
    `who` String `json:$.who`,
    `v` Int32 `json:$.v`

ENGINE "MergeTree"
ENGINE_SORTING_KEY "who"
"#;

const PIPE: &str = r#"NODE counts_0
SQL >
    SELECT who, count() AS c FROM events GROUP BY who

TYPE endpoint
"#;

const CHANGED_PIPE: &str = r#"NODE counts_0
SQL >
    SELECT who, count() AS c, sum(v) AS total FROM events GROUP BY who ORDER BY who

TYPE endpoint
"#;

/// Where the Forward `tb` is: `ROOST_TB_FORWARD_BIN`, else the cache `make clients` fills.
fn forward_binary() -> PathBuf {
    let path = std::env::var_os("ROOST_TB_FORWARD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/roost/clients/forward/bin/tb")
        });
    assert!(
        path.is_file(),
        "the Forward tb CLI (PyPI `tinybird`) is not installed at {}: run `make clients` (or set ROOST_TB_FORWARD_BIN)",
        path.display()
    );
    path
}

/// Runs the Forward `tb args...` in `project` against `roost` in local mode.
fn forward_tb(roost: &RoostLocal, project: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(forward_binary())
        .args(args)
        .current_dir(project)
        .env("TB_LOCAL_HOST", "127.0.0.1")
        .env("TB_LOCAL_PORT", roost.port.to_string())
        .env("TB_CLI_TELEMETRY_OPTOUT", "1")
        .env("TB_VERSION_WARNING", "0")
        // Never offer to start a Docker container.
        .env("CI", "1")
        .env_remove("TB_TOKEN")
        .env_remove("TB_HOST")
        .output()
        .expect("the Forward tb runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

async fn get(roost: &RoostLocal, path: &str, token: &str) -> Value {
    let response = reqwest::Client::new()
        .get(roost.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

/// The build workspaces the CLI made: `Tinybird_Local_Build_<hash of the folder>`.
async fn build_workspaces(roost: &RoostLocal) -> Vec<Value> {
    let listed = get(roost, "/v1/user/workspaces", &roost.tokens.user).await;
    listed["workspaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| {
            w["name"]
                .as_str()
                .unwrap_or_default()
                .starts_with("Tinybird_Local_Build_")
        })
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_forward_tb_builds_in_its_own_workspace() {
    let roost = RoostLocal::start(env!("CARGO_BIN_EXE_roost"))
        .await
        .expect("roost local starts");
    let project = tempfile::tempdir().unwrap();
    let dir = project.path();
    std::fs::create_dir_all(dir.join("datasources")).unwrap();
    std::fs::create_dir_all(dir.join("endpoints")).unwrap();
    std::fs::write(dir.join("datasources/events.datasource"), DATASOURCE).unwrap();
    std::fs::write(dir.join("endpoints/counts.pipe"), PIPE).unwrap();
    // Fixtures the CLI appends after a build (through Forward's `/v1/datasources/{name}/append`).
    std::fs::create_dir_all(dir.join("fixtures")).unwrap();
    std::fs::write(
        dir.join("fixtures/events.ndjson"),
        "{\"who\":\"a\",\"v\":1}\n{\"who\":\"b\",\"v\":2}\n{\"who\":\"a\",\"v\":3}\n",
    )
    .unwrap();

    let (built, output) = forward_tb(&roost, dir, &["build"]);
    assert!(output.contains("Building project"), "{output}");

    // The CLI created its workspace through the user token, and holds a working admin token of it.
    let workspaces = build_workspaces(&roost).await;
    assert_eq!(
        workspaces.len(),
        1,
        "one build workspace: {workspaces:?}\n{output}"
    );
    let workspace = &workspaces[0];
    let token = workspace["token"].as_str().unwrap();
    let current = get(&roost, "/v1/workspace", token).await;
    assert_eq!(current["id"], workspace["id"]);
    let default = get(&roost, "/v0/workspace", &roost.tokens.workspace_admin).await;
    assert_ne!(
        current["id"], default["id"],
        "its own workspace, not the default one"
    );

    assert!(built, "tb build failed:\n{output}");
    assert!(
        output.contains("events.datasource created") && output.contains("counts.pipe created"),
        "{output}"
    );

    // A second run finds the same workspace rather than making another, and nothing to do.
    let (built_again, output_again) = forward_tb(&roost, dir, &["build"]);
    assert!(built_again, "{output_again}");
    assert!(output_again.contains("No changes"), "{output_again}");
    assert_eq!(build_workspaces(&roost).await.len(), 1, "{output_again}");

    let datasources = get(&roost, "/v0/datasources", token).await;
    assert!(
        datasources.to_string().contains("\"events\""),
        "{datasources}"
    );
    let pipes = get(&roost, "/v0/pipes", token).await;
    assert!(pipes.to_string().contains("\"counts\""), "{pipes}");
    // The default workspace is untouched.
    let defaults = get(&roost, "/v0/datasources", &roost.tokens.workspace_admin).await;
    assert!(!defaults.to_string().contains("\"events\""), "{defaults}");

    // A changed pipe is replaced; a data source added, then removed from the project, comes and goes.
    std::fs::write(dir.join("endpoints/counts.pipe"), CHANGED_PIPE).unwrap();
    std::fs::write(
        dir.join("datasources/extra.datasource"),
        "SCHEMA >\n    `x` String\n",
    )
    .unwrap();
    let (changed, output) = forward_tb(&roost, dir, &["build"]);
    assert!(changed, "{output}");
    assert!(
        output.contains("counts.pipe changed") && output.contains("extra.datasource created"),
        "{output}"
    );
    let answer = get(&roost, "/v0/pipes/counts.json", token).await;
    assert_eq!(
        answer["data"],
        serde_json::json!([{"who": "a", "c": 2, "total": 4}, {"who": "b", "c": 1, "total": 2}]),
        "the fixtures were appended once and the unchanged data source kept them"
    );
    let columns: Vec<&str> = answer["meta"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["who", "c", "total"]);
    std::fs::remove_file(dir.join("datasources/extra.datasource")).unwrap();
    let (removed, output) = forward_tb(&roost, dir, &["build"]);
    assert!(
        removed && output.contains("extra.datasource deleted"),
        "{output}"
    );
    let datasources = get(&roost, "/v0/datasources", token).await;
    assert!(
        !datasources.to_string().contains("\"extra\""),
        "{datasources}"
    );

    // A datafile the server cannot read fails the build, naming the file and line.
    std::fs::write(
        dir.join("datasources/broken.datasource"),
        "SCHEMA >\n    `x` String\nBOGUS 1\n",
    )
    .unwrap();
    let (broken, output) = forward_tb(&roost, dir, &["build"]);
    assert!(!broken, "{output}");
    assert!(
        output.contains("broken.datasource")
            && output.contains("line 3: unknown instruction 'BOGUS'"),
        "{output}"
    );
}
