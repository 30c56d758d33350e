//! `roost-bench`: Roost against its raw engine, side by side, in one run on the same data and the
//! same machine (issue 8). By default the raw side is the embedded chDB opened in this process and
//! Roost is a separate `roost local` process (one chDB data path per process). With
//! `ROOST_BENCH_CLICKHOUSE_URL` both sides use that ClickHouse server: the raw side over its HTTP
//! interface, Roost as `roost local` with `engine.kind = "clickhouse"`.

mod data;
mod report;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use clap::Parser;
use roost_engine::{Chdb, ChdbConfig, ClickHouse, ClickHouseConfig, Engine, InsertBlock};
use roost_testkit::RoostLocal;
use serde_json::{Value, json};

use crate::report::{ms, num, percentile, table};

/// Environment variable that points the raw side at a ClickHouse server over HTTP.
const CLICKHOUSE_URL_ENV: &str = "ROOST_BENCH_CLICKHOUSE_URL";
/// Rows per insert / per Events API request.
const BATCH_ROWS: u64 = 10_000;
/// Concurrency levels of the endpoint benchmark.
const LEVELS: [usize; 3] = [1, 8, 32];
/// The raw table, in the bench process's own engine.
const RAW_TABLE: &str = "`bench`.`events`";
/// The data source and pipe names in Roost.
const DATA_SOURCE: &str = "bench";
const PIPE: &str = "bench_by_event";

#[derive(Debug, Parser)]
#[command(
    name = "roost-bench",
    about = "Roost against its raw engine: ingest, endpoints, footprint"
)]
struct Args {
    /// NDJSON rows to ingest on each side.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Concurrent ingest clients on each side.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Endpoint requests per concurrency level on each side.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Ingest rounds on each side, the order of the sides alternating, and the slices each
    /// endpoint level is run in, alternating sides: a single pass on a shared 2-core machine
    /// swings by 10-20% between runs, and the median of rounds taken side by side much less.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// The `roost` binary (default: target/release/roost of this workspace).
    #[arg(long)]
    roost_bin: Option<PathBuf>,
    /// Where results.json goes (default: target/bench of this workspace).
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Where both sides keep their data, each in a new directory (default: the system's
    /// temporary directory). Every part is a set of files, so the filesystem's cost of creating
    /// files weighs on both sides (see README, Performance).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.rows > 0, "--rows must be positive");
    ensure!(args.clients > 0, "--clients must be positive");
    ensure!(args.requests > 0, "--requests must be positive");
    ensure!(args.rounds > 0, "--rounds must be positive");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

/// The engine the raw side runs on, and the processes whose CPU time is the engine's.
struct RawEngine {
    engine: Arc<dyn Engine>,
    /// What it is, for the report.
    description: String,
    /// The ClickHouse server's URL, which Roost is pointed at too; `None` for embedded chDB.
    server_url: Option<String>,
    /// The processes doing the engine's work: this one for chDB, the server's for ClickHouse.
    engine_pids: Vec<u32>,
    timestamps: data::Timestamps,
    _data_dir: Option<tempfile::TempDir>,
}

impl RawEngine {
    /// The raw engine; an embedded one keeps its data in a new directory inside `parent`.
    async fn open(parent: &Path) -> anyhow::Result<RawEngine> {
        let (engine, description, server_url, engine_pids, data_dir) = match std::env::var(
            CLICKHOUSE_URL_ENV,
        ) {
            Ok(url) if !url.trim().is_empty() => {
                let engine: Arc<dyn Engine> =
                    Arc::new(ClickHouse::new(&ClickHouseConfig::new(url.clone()))?);
                let version = engine
                    .server_version()
                    .await
                    .with_context(|| format!("cannot reach ClickHouse at {url}"))?;
                let pids = clickhouse_server_pids();
                ensure!(
                    !pids.is_empty(),
                    "no clickhouse-server process runs on this machine: the bench measures \
                         the server's CPU time, so it must run here"
                );
                (
                    engine,
                    format!(
                        "ClickHouse {version} at {url} over HTTP (inserts parsed by ClickHouse's \
                             own JSONEachRow parser); roost local uses the same server"
                    ),
                    Some(url),
                    pids,
                    None,
                )
            }
            _ => {
                let dir = tempfile::tempdir_in(parent)?;
                let mut config = ChdbConfig::new(dir.path().join("chdb"));
                // The raw side is chDB as it comes: its merges at the usual priority.
                config.merge_thread_nice = None;
                let chdb = Chdb::open(&config)?;
                let description = format!(
                    "chDB {} embedded in the bench process (inserts parsed by chDB's own \
                         JSONEachRow parser)",
                    chdb.version()
                );
                let engine: Arc<dyn Engine> = Arc::new(chdb);
                (
                    engine,
                    description,
                    None,
                    vec![std::process::id()],
                    Some(dir),
                )
            }
        };
        let timestamps = match engine
            .query("SELECT toDateTime64('2024-01-01 00:00:00.123', 3)", "TSV")
            .await
        {
            Ok(_) => data::Timestamps::Millis,
            Err(_) => data::Timestamps::Seconds,
        };
        Ok(RawEngine {
            engine,
            description,
            server_url,
            engine_pids,
            timestamps,
            _data_dir: data_dir,
        })
    }

    fn cpu_seconds(&self) -> anyhow::Result<f64> {
        self.engine_pids.iter().map(|&pid| cpu_seconds(pid)).sum()
    }
}

/// The pids of the ClickHouse servers running here.
fn clickhouse_server_pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                cmdline
                    .split(|&byte| byte == 0)
                    .next()
                    .is_some_and(|program| String::from_utf8_lossy(program).contains("clickhouse"))
            })
        })
        .collect()
}

/// One side's ingest.
struct Ingest {
    seconds: f64,
    rows: u64,
    bytes: u64,
    /// CPU seconds of the processes doing the work (the engine's; Roost's and, with a ClickHouse
    /// server, the server's), all threads. On a shared machine wall time swings with other load;
    /// this swings much less.
    cpu_seconds: f64,
    /// CPU seconds the bench itself spent sending Roost's requests (zero for the raw side).
    client_cpu_seconds: f64,
    /// CPU seconds the engine went on spending once the round ended, until it was idle again:
    /// the merges the round's parts left. Not in `seconds`: the rows were queryable already.
    after_cpu_seconds: f64,
}

impl Ingest {
    fn rows_per_second(&self) -> f64 {
        self.rows as f64 / self.seconds
    }
    fn mb_per_second(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds
    }
    fn cpu_us_per_row(&self) -> f64 {
        self.cpu_seconds * 1e6 / self.rows as f64
    }
    fn after_cpu_us_per_row(&self) -> f64 {
        self.after_cpu_seconds * 1e6 / self.rows as f64
    }
}

/// One side's endpoint run at one concurrency level.
struct Level {
    p50: Duration,
    p99: Duration,
    rps: f64,
}

async fn run(args: Args) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let roost_bin = args
        .roost_bin
        .clone()
        .unwrap_or_else(|| workspace_root().join("target/release/roost"));
    ensure!(
        roost_bin.is_file(),
        "{} not found: build it with `cargo build --release -p roost-server` (make bench does)",
        roost_bin.display()
    );
    println!(
        "roost-bench: {} rows, batches of {BATCH_ROWS}, {} ingest clients, {} ingest rounds, {} requests per level, {cores} cores",
        args.rows, args.clients, args.rounds, args.requests
    );

    // The raw engine: chDB in this process, or the ClickHouse server.
    let data_dir = args.data_dir.clone().unwrap_or_else(std::env::temp_dir);
    println!("data in {}", data_dir.display());
    let raw = RawEngine::open(&data_dir).await?;
    println!("raw engine: {}", raw.description);
    if raw.timestamps == data::Timestamps::Seconds {
        println!(
            "note: the engine has no DateTime64; both sides store ts as DateTime, to the second"
        );
    }

    // Footprint: spawn to first answer, idle RSS.
    let mut env = vec![
        ("ROOST_EVENTS_RPS", "1000000"),
        ("ROOST_EVENTS_BYTES_PER_SECOND", "100000000000"),
    ];
    if let Some(url) = &raw.server_url {
        env.extend([
            ("ROOST_ENGINE_KIND", "clickhouse"),
            ("ROOST_ENGINE_URLS", url.as_str()),
        ]);
    }
    let roost = RoostLocal::start_in(&roost_bin, &data_dir, &env).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = rss_kib(roost.pid())?;
    println!(
        "roost local: started in {:.0} ms, idle RSS {} MiB",
        ms(roost.startup),
        rss_idle / 1024
    );

    let engine = raw.engine.clone();
    engine
        .execute("CREATE DATABASE IF NOT EXISTS `bench`")
        .await?;
    // A server keeps the table of an earlier run.
    engine
        .execute(&format!("DROP TABLE IF EXISTS {RAW_TABLE}"))
        .await?;
    engine
        .execute(&format!(
            "CREATE TABLE {RAW_TABLE} ({}) ENGINE = MergeTree ORDER BY {}",
            data::raw_columns(raw.timestamps),
            data::SORTING_KEY
        ))
        .await?;

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(300))
        .build()?;
    let token = roost.tokens.workspace_admin.clone();
    ensure!(
        !token.is_empty(),
        "roost local gave no workspace admin token"
    );
    let created = http
        .post(roost.url("/v0/datasources"))
        .bearer_auth(&token)
        .form(&[
            ("name", DATA_SOURCE),
            ("schema", data::schema(raw.timestamps).as_str()),
            ("engine_sorting_key", data::SORTING_KEY),
        ])
        .send()
        .await?;
    expect_ok(created, "creating the data source").await?;

    // 1. Ingest.
    let generated = Instant::now();
    let batches = Arc::new(data::batches(args.rows, BATCH_ROWS, raw.timestamps));
    let total_bytes: u64 = batches.iter().map(|b| b.len() as u64).sum();
    println!(
        "data: {} rows, {:.1} MB of NDJSON, generated in {:.2} s",
        args.rows,
        total_bytes as f64 / 1e6,
        generated.elapsed().as_secs_f64()
    );
    let sides = Sides {
        http: &http,
        roost: &roost,
        raw: &raw,
        token: &token,
        batches: &batches,
        rows: args.rows,
        clients: args.clients,
        bytes: total_bytes,
    };
    let mut rounds = Vec::new();
    for round in 0..args.rounds {
        if round > 0 {
            engine
                .execute(&format!("TRUNCATE TABLE {RAW_TABLE}"))
                .await?;
            let truncated = http
                .post(roost.url(&format!("/v0/datasources/{DATA_SOURCE}/truncate")))
                .bearer_auth(&token)
                .send()
                .await?;
            ensure!(
                truncated.status().is_success(),
                "truncating the data source: {}",
                truncated.status()
            );
        }
        // Alternating which side goes first cancels what the order itself does (a warmer page
        // cache, the other side's file deletions still being written back).
        let (raw_ingest, roost_ingest) = if round % 2 == 0 {
            let raw_ingest = sides.raw_round().await?;
            (raw_ingest, sides.roost_round().await?)
        } else {
            let roost_ingest = sides.roost_round().await?;
            (sides.raw_round().await?, roost_ingest)
        };
        println!(
            "ingest round {}: raw {:.0} rows/s, roost {:.0} rows/s, ratio {:.3}; \
             CPU us/row raw {:.2} (+{:.2} after), roost {:.2} (+{:.2} after)",
            round + 1,
            raw_ingest.rows_per_second(),
            roost_ingest.rows_per_second(),
            roost_ingest.rows_per_second() / raw_ingest.rows_per_second(),
            raw_ingest.cpu_us_per_row(),
            raw_ingest.after_cpu_us_per_row(),
            roost_ingest.cpu_us_per_row(),
            roost_ingest.after_cpu_us_per_row(),
        );
        rounds.push((raw_ingest, roost_ingest));
    }
    engine
        .execute(&format!("SYSTEM START MERGES {RAW_TABLE}"))
        .await?;
    settle_merges(engine.as_ref()).await?;
    settle(|| cpu_seconds(roost.pid())).await?;
    drop(batches);
    let rss_after_ingest = rss_kib(roost.pid())?;

    // 2. Endpoints.
    create_pipe(&http, &roost, &token).await?;
    let engine_for_raw = engine.clone();
    let raw_call = move |i: usize| {
        let engine = engine_for_raw.clone();
        async move {
            let (country, min_qty) = params(i);
            let sql = endpoint_sql(&format!("'{country}'"), &min_qty.to_string(), RAW_TABLE);
            let answer = engine.query(&sql, "JSON").await?;
            ensure!(!answer.data.is_empty(), "empty raw answer");
            Ok(())
        }
    };
    let endpoint_url = roost.url(&format!("/v0/pipes/{PIPE}.json"));
    let roost_call = {
        let http = http.clone();
        let token = token.clone();
        move |i: usize| {
            let request = {
                let (country, min_qty) = params(i);
                http.get(&endpoint_url).bearer_auth(&token).query(&[
                    ("country", country.to_string()),
                    ("min_qty", min_qty.to_string()),
                ])
            };
            async move {
                let response = request.send().await?;
                let status = response.status();
                let body = response.bytes().await?;
                ensure!(
                    status.is_success(),
                    "endpoint answered {status}: {}",
                    String::from_utf8_lossy(&body)
                );
                Ok(())
            }
        }
    };
    check_same_answer(engine.as_ref(), &http, &roost, &token).await?;
    let mut levels = Vec::new();
    for clients in LEVELS {
        let (mut raw, mut via_roost) = (Samples::default(), Samples::default());
        for slice in 0..args.rounds {
            let requests = slice_requests(args.requests, args.rounds, slice);
            if slice % 2 == 0 {
                raw.add(load(clients, requests, raw_call.clone()).await?);
                via_roost.add(load(clients, requests, roost_call.clone()).await?);
            } else {
                via_roost.add(load(clients, requests, roost_call.clone()).await?);
                raw.add(load(clients, requests, raw_call.clone()).await?);
            }
        }
        levels.push((clients, raw.level(), via_roost.level()));
    }
    if raw.server_url.is_some() {
        // A server outlives the run: leave it as it was.
        remove_bench_tables(&http, &roost, &token, engine.as_ref()).await?;
    }

    // 3. Report: each side's median round, and the median of the rounds' ratios.
    let round_ratios: Vec<f64> = rounds
        .iter()
        .map(|(raw, roost)| roost.rows_per_second() / raw.rows_per_second())
        .collect();
    let ingest_ratio = median(&round_ratios);
    let raw_ingest = median_round(rounds.iter().map(|(raw, _)| raw));
    let roost_ingest = median_round(rounds.iter().map(|(_, roost)| roost));
    let header = ["measure", "raw engine", "roost", "roost/raw", "roost-raw"];
    let mut rows = vec![
        vec![
            "ingest rows/s".to_string(),
            num(raw_ingest.rows_per_second(), 0),
            num(roost_ingest.rows_per_second(), 0),
            num(ingest_ratio, 3),
            String::new(),
        ],
        vec![
            "ingest MB/s".to_string(),
            num(raw_ingest.mb_per_second(), 1),
            num(roost_ingest.mb_per_second(), 1),
            num(roost_ingest.mb_per_second() / raw_ingest.mb_per_second(), 3),
            String::new(),
        ],
        vec![
            "ingest seconds".to_string(),
            num(raw_ingest.seconds, 2),
            num(roost_ingest.seconds, 2),
            num(roost_ingest.seconds / raw_ingest.seconds, 3),
            String::new(),
        ],
        vec![
            "ingest CPU us/row".to_string(),
            num(raw_ingest.cpu_us_per_row(), 2),
            num(roost_ingest.cpu_us_per_row(), 2),
            num(roost_ingest.cpu_seconds / raw_ingest.cpu_seconds, 3),
            String::new(),
        ],
        vec![
            "ingest CPU after us/row".to_string(),
            num(raw_ingest.after_cpu_us_per_row(), 2),
            num(roost_ingest.after_cpu_us_per_row(), 2),
            String::new(),
            String::new(),
        ],
        vec![
            "ingest client CPU us/row".to_string(),
            String::new(),
            num(
                roost_ingest.client_cpu_seconds * 1e6 / roost_ingest.rows as f64,
                2,
            ),
            String::new(),
            String::new(),
        ],
    ];
    for (clients, raw, via_roost) in &levels {
        for (name, a, b) in [
            ("p50 ms", ms(raw.p50), ms(via_roost.p50)),
            ("p99 ms", ms(raw.p99), ms(via_roost.p99)),
        ] {
            rows.push(vec![
                format!("endpoint c={clients} {name}"),
                num(a, 2),
                num(b, 2),
                num(b / a, 2),
                num(b - a, 2),
            ]);
        }
        rows.push(vec![
            format!("endpoint c={clients} req/s"),
            num(raw.rps, 0),
            num(via_roost.rps, 0),
            num(via_roost.rps / raw.rps, 3),
            String::new(),
        ]);
    }
    rows.push(vec![
        "roost startup ms".to_string(),
        String::new(),
        num(ms(roost.startup), 0),
        String::new(),
        String::new(),
    ]);
    rows.push(vec![
        "roost RSS idle MiB".to_string(),
        String::new(),
        num(rss_idle as f64 / 1024.0, 0),
        String::new(),
        String::new(),
    ]);
    rows.push(vec![
        "roost RSS after ingest MiB".to_string(),
        String::new(),
        num(rss_after_ingest as f64 / 1024.0, 0),
        String::new(),
        String::new(),
    ]);
    println!();
    print!("{}", table(&header, &rows));
    println!(
        "raw ingest = Engine::insert FORMAT JSONEachRow (chDB's own JSON parser) in this process; \
         roost ingest = POST /v0/events?wait=true over HTTP; latencies are client-side; \
         ingest figures are each side's median round, and roost/raw for rows/s the median \
         of the rounds' ratios; ingest CPU = CPU time of the engine's processes (this one for chDB, else the server's) \
         during the raw ingest, and of roost local plus any server during Roost's; client CPU = \
         this process sending Roost's requests; CPU after = what the engine spent once the round \
         ended until it was idle (the merges the round left), not in the round's time."
    );

    let (_, raw32, roost32) = levels.last().context("no endpoint level ran")?;
    let p50_overhead = ms(roost32.p50) - ms(raw32.p50);
    let p99_overhead = ms(roost32.p99) - ms(raw32.p99);

    let out_dir = args
        .out_dir
        .clone()
        .unwrap_or_else(|| workspace_root().join("target/bench"));
    std::fs::create_dir_all(&out_dir)?;
    let side = |i: &Ingest| {
        json!({"seconds": i.seconds, "rows": i.rows, "bytes": i.bytes,
               "rows_per_second": i.rows_per_second(), "mb_per_second": i.mb_per_second(),
               "cpu_seconds": i.cpu_seconds, "client_cpu_seconds": i.client_cpu_seconds,
               "after_cpu_seconds": i.after_cpu_seconds})
    };
    let level =
        |l: &Level| json!({"p50_ms": ms(l.p50), "p99_ms": ms(l.p99), "requests_per_second": l.rps});
    let results = json!({
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "cores": cores,
        "engine": raw.description,
        "rows": args.rows,
        "batch_rows": BATCH_ROWS,
        "ingest_clients": args.clients,
        "requests_per_level": args.requests,
        "rounds": args.rounds,
        "data_dir": data_dir,
        "ingest": {"raw": side(raw_ingest), "roost": side(roost_ingest), "ratio": ingest_ratio,
                   "rounds": rounds.iter().zip(&round_ratios).map(|((raw, roost), ratio)| json!({
                       "raw": side(raw), "roost": side(roost), "ratio": ratio,
                   })).collect::<Vec<_>>()},
        "endpoints": levels.iter().map(|(clients, raw, via_roost)| json!({
            "clients": clients, "raw": level(raw), "roost": level(via_roost),
            "p50_overhead_ms": ms(via_roost.p50) - ms(raw.p50),
            "p99_overhead_ms": ms(via_roost.p99) - ms(raw.p99),
        })).collect::<Vec<_>>(),
        "footprint": {
            "startup_ms": ms(roost.startup),
            "rss_idle_kib": rss_idle,
            "rss_after_ingest_kib": rss_after_ingest,
        },
        "ingest_ratio": ingest_ratio,
        "endpoint_p50_overhead_ms": p50_overhead,
        "endpoint_p99_overhead_ms": p99_overhead,
    });
    let path = out_dir.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&results)? + "\n")?;
    println!("results: {}", path.display());
    println!("ingest_ratio={ingest_ratio:.3}");
    println!("endpoint_p50_overhead_ms={p50_overhead:.3}");
    println!("endpoint_p99_overhead_ms={p99_overhead:.3}");
    Ok(())
}

/// The endpoint's parameters for request `i`: the same on both sides.
fn params(i: usize) -> (&'static str, i32) {
    (data::COUNTRIES[i % data::COUNTRIES.len()], (i % 5) as i32)
}

/// The endpoint query with already-quoted parameter values.
fn endpoint_sql(country: &str, min_qty: &str, table: &str) -> String {
    format!(
        "SELECT event, count() AS events, round(sum(amount), 2) AS total FROM {table} \
         WHERE country = {country} AND quantity > {min_qty} GROUP BY event ORDER BY event"
    )
}

async fn ingest_raw(sides: &Sides<'_>) -> anyhow::Result<Ingest> {
    let Sides {
        raw,
        batches,
        clients,
        bytes,
        ..
    } = *sides;
    let engine = &raw.engine;
    let next = Arc::new(AtomicUsize::new(0));
    let cpu = raw.cpu_seconds()?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (engine, batches, next) = (engine.clone(), batches.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(batch) = batches.get(i) else {
                    return anyhow::Ok(());
                };
                engine
                    .insert(InsertBlock {
                        table: RAW_TABLE,
                        columns: "",
                        format: "JSONEachRow",
                        data: batch.clone(),
                        settings: data::RAW_INSERT_SETTINGS,
                    })
                    .await
                    .context("raw insert")?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Ingest {
        seconds,
        rows: batches
            .iter()
            .map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64)
            .sum(),
        bytes,
        cpu_seconds: raw.cpu_seconds()? - cpu,
        client_cpu_seconds: 0.0,
        after_cpu_seconds: 0.0,
    })
}

async fn ingest_roost(sides: &Sides<'_>) -> anyhow::Result<Ingest> {
    let Sides {
        http,
        roost,
        token,
        batches,
        clients,
        bytes,
        ..
    } = *sides;
    let next = Arc::new(AtomicUsize::new(0));
    let url = roost.url("/v0/events");
    let (server_before, client_before) = (sides.roost_cpu()?, cpu_seconds(std::process::id())?);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, batches, next) = (http.clone(), batches.clone(), next.clone());
        let (url, token) = (url.clone(), token.to_string());
        tasks.push(tokio::spawn(async move {
            let mut rows = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(batch) = batches.get(i) else {
                    return anyhow::Ok(rows);
                };
                let response = http
                    .post(&url)
                    .bearer_auth(&token)
                    .query(&[("name", DATA_SOURCE), ("wait", "true")])
                    .body(batch.clone())
                    .send()
                    .await?;
                let answer = expect_ok(response, "POST /v0/events").await?;
                let quarantined = answer["quarantined_rows"].as_u64().unwrap_or(0);
                ensure!(quarantined == 0, "rows were quarantined: {answer}");
                rows += answer["successful_rows"]
                    .as_u64()
                    .with_context(|| format!("no successful_rows in {answer}"))?;
            }
        }));
    }
    let mut rows = 0;
    for task in tasks {
        rows += task.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Ingest {
        seconds,
        rows,
        bytes,
        cpu_seconds: sides.roost_cpu()? - server_before,
        client_cpu_seconds: cpu_seconds(std::process::id())? - client_before,
        after_cpu_seconds: 0.0,
    })
}

/// What one ingest round on either side needs.
struct Sides<'a> {
    http: &'a reqwest::Client,
    roost: &'a RoostLocal,
    raw: &'a RawEngine,
    token: &'a str,
    batches: &'a Arc<Vec<Bytes>>,
    /// The rows in `batches`: what each side must hold after its round.
    rows: u64,
    clients: usize,
    bytes: u64,
}

impl Sides<'_> {
    /// The raw side's ingest, once Roost has settled. Its merges run during the round and after
    /// it until they are done (their CPU is `after_cpu_seconds`), then stop until its next round,
    /// so they never run during Roost's.
    async fn raw_round(&self) -> anyhow::Result<Ingest> {
        let engine = self.raw.engine.as_ref();
        settle(|| self.roost_cpu()).await?;
        engine
            .execute(&format!("SYSTEM START MERGES {RAW_TABLE}"))
            .await?;
        let mut ingest = ingest_raw(self).await?;
        let count = count_raw(engine).await?;
        ensure!(
            count == self.rows,
            "the raw table holds {count} rows, not {}",
            self.rows
        );
        ingest.after_cpu_seconds = settle(|| self.raw.cpu_seconds()).await?;
        engine
            .execute(&format!("SYSTEM STOP MERGES {RAW_TABLE}"))
            .await?;
        settle_merges(engine).await?;
        Ok(ingest)
    }

    /// Roost's ingest, until every row is queryable; then its merges, until they are done.
    async fn roost_round(&self) -> anyhow::Result<Ingest> {
        let mut ingest = ingest_roost(self)
            .await
            .with_context(|| format!("roost local log:\n{}", tail(&self.roost.log(), 40)))?;
        let count = count_roost(self.http, self.roost, self.token).await?;
        ensure!(
            count == self.rows && ingest.rows == self.rows,
            "the Roost data source holds {count} rows and Roost reported {} stored, not {}",
            ingest.rows,
            self.rows
        );
        ingest.after_cpu_seconds = settle(|| self.roost_cpu()).await?;
        Ok(ingest)
    }

    /// CPU seconds of the processes storing Roost's rows: roost local, and a ClickHouse server
    /// when there is one (with embedded chDB the engine's process is this one, the client).
    fn roost_cpu(&self) -> anyhow::Result<f64> {
        let server = match self.raw.server_url {
            Some(_) => self.raw.cpu_seconds()?,
            None => 0.0,
        };
        Ok(cpu_seconds(self.roost.pid())? + server)
    }
}

/// Waits, untimed and for at most a minute, until the processes `cpu` reads are idle (at most one
/// 10 ms tick of CPU in each of three 200 ms looks in a row); the CPU seconds they spent meanwhile.
/// One side's merges after its ingest must not run during the other side's.
async fn settle(cpu: impl Fn() -> anyhow::Result<f64>) -> anyhow::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut quiet = 0;
    let start = cpu()?;
    let mut before = start;
    while quiet < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = cpu()?;
        quiet = if now - before < 0.015 { quiet + 1 } else { 0 };
        before = now;
    }
    Ok(before - start)
}

async fn count_raw(engine: &dyn Engine) -> anyhow::Result<u64> {
    let answer = engine
        .query(&format!("SELECT count() FROM {RAW_TABLE}"), "TSV")
        .await?;
    Ok(String::from_utf8_lossy(&answer.data).trim().parse()?)
}

async fn count_roost(
    http: &reqwest::Client,
    roost: &RoostLocal,
    token: &str,
) -> anyhow::Result<u64> {
    let response = http
        .get(roost.url("/v0/sql"))
        .bearer_auth(token)
        .query(&[(
            "q",
            format!("SELECT count() AS n FROM {DATA_SOURCE} FORMAT JSON"),
        )])
        .send()
        .await?;
    let answer = expect_ok(response, "counting through /v0/sql").await?;
    let n = &answer["data"][0]["n"];
    n.as_u64()
        .or_else(|| n.as_str().and_then(|s| s.parse().ok()))
        .with_context(|| format!("no count in {answer}"))
}

async fn create_pipe(
    http: &reqwest::Client,
    roost: &RoostLocal,
    token: &str,
) -> anyhow::Result<()> {
    let sql = format!(
        "%\n{}",
        endpoint_sql(
            "{{ String(country, 'ES', required=True) }}",
            "{{ Int32(min_qty, 0) }}",
            DATA_SOURCE
        )
    );
    let response = http
        .post(roost.url("/v0/pipes"))
        .bearer_auth(token)
        .json(&json!({
            "name": PIPE,
            "nodes": [{"name": "by_event", "sql": sql, "type": "endpoint"}],
        }))
        .send()
        .await?;
    expect_ok(response, "creating the pipe").await?;
    Ok(())
}

/// Drops the raw table and Roost's pipe and data source (with their tables on the server).
async fn remove_bench_tables(
    http: &reqwest::Client,
    roost: &RoostLocal,
    token: &str,
    engine: &dyn Engine,
) -> anyhow::Result<()> {
    for path in [
        format!("/v0/pipes/{PIPE}"),
        format!("/v0/datasources/{DATA_SOURCE}"),
    ] {
        let response = http
            .delete(roost.url(&path))
            .bearer_auth(token)
            .send()
            .await?;
        let status = response.status();
        ensure!(
            status.is_success(),
            "DELETE {path}: {status}: {}",
            response.text().await.unwrap_or_default()
        );
    }
    engine
        .execute(&format!("DROP TABLE IF EXISTS {RAW_TABLE}"))
        .await?;
    Ok(())
}

/// Both sides must compute the same thing, or the comparison means nothing.
async fn check_same_answer(
    engine: &dyn Engine,
    http: &reqwest::Client,
    roost: &RoostLocal,
    token: &str,
) -> anyhow::Result<()> {
    let (country, min_qty) = params(3);
    let raw = engine
        .query(
            &endpoint_sql(&format!("'{country}'"), &min_qty.to_string(), RAW_TABLE),
            "JSON",
        )
        .await?;
    let raw: Value = serde_json::from_slice(&raw.data)?;
    let response = http
        .get(roost.url(&format!("/v0/pipes/{PIPE}.json")))
        .bearer_auth(token)
        .query(&[
            ("country", country.to_string()),
            ("min_qty", min_qty.to_string()),
        ])
        .send()
        .await?;
    let via_roost = expect_ok(response, "calling the endpoint").await?;
    ensure!(
        with_integers_as_numbers(&raw["data"]) == with_integers_as_numbers(&via_roost["data"]),
        "the endpoint and the raw query disagree:\nraw: {}\nroost: {}",
        raw["data"],
        via_roost["data"]
    );
    Ok(())
}

/// `value` with integers written as strings turned into numbers: ClickHouse servers quote 64-bit
/// integers in JSON by default (`output_format_json_quote_64bit_integers`), Tinybird does not.
fn with_integers_as_numbers(value: &Value) -> Value {
    match value {
        Value::String(text) => text
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| text.parse::<u64>().map(Value::from))
            .unwrap_or_else(|_| value.clone()),
        Value::Array(items) => items.iter().map(with_integers_as_numbers).collect(),
        Value::Object(fields) => fields
            .iter()
            .map(|(name, field)| (name.clone(), with_integers_as_numbers(field)))
            .collect(),
        other => other.clone(),
    }
}

/// Runs `requests` calls of `call` from `clients` concurrent tasks (after a short warm-up) and
/// measures each call's latency.
async fn load<F, Fut>(clients: usize, requests: usize, call: F) -> anyhow::Result<Samples>
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    for i in 0..clients.min(8) {
        call(i).await?;
    }
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (call, next) = (call.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    return anyhow::Ok(latencies);
                }
                let sent = Instant::now();
                call(i).await?;
                latencies.push(sent.elapsed());
            }
        }));
    }
    let mut latencies = Vec::with_capacity(requests);
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok(Samples {
        latencies,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Latencies of one side at one level, gathered over its slices.
#[derive(Default)]
struct Samples {
    latencies: Vec<Duration>,
    /// Wall time of the slices, added up.
    seconds: f64,
}

impl Samples {
    fn add(&mut self, slice: Samples) {
        self.latencies.extend(slice.latencies);
        self.seconds += slice.seconds;
    }

    fn level(mut self) -> Level {
        self.latencies.sort_unstable();
        Level {
            p50: percentile(&self.latencies, 50.0),
            p99: percentile(&self.latencies, 99.0),
            rps: self.latencies.len() as f64 / self.seconds,
        }
    }
}

/// The requests of slice `slice` out of `slices`: `requests` shared as evenly as can be.
fn slice_requests(requests: usize, slices: usize, slice: usize) -> usize {
    requests / slices + usize::from(slice < requests % slices)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The round with the median rows/s (the lower middle one of an even number).
fn median_round<'a>(rounds: impl Iterator<Item = &'a Ingest>) -> &'a Ingest {
    let mut rounds: Vec<&Ingest> = rounds.collect();
    rounds.sort_by(|a, b| a.rows_per_second().total_cmp(&b.rows_per_second()));
    rounds[(rounds.len() - 1) / 2]
}

/// The JSON body of a successful answer, or an error naming `what` with the body.
async fn expect_ok(response: reqwest::Response, what: &str) -> anyhow::Result<Value> {
    let status = response.status();
    let body = response.bytes().await?;
    if !status.is_success() {
        bail!("{what}: {status}: {}", String::from_utf8_lossy(&body));
    }
    serde_json::from_slice(&body)
        .with_context(|| format!("{what}: not JSON: {}", String::from_utf8_lossy(&body)))
}

/// Waits, untimed and for at most a minute, until the raw engine runs no merge (three quiet
/// looks in a row).
async fn settle_merges(engine: &dyn Engine) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut quiet = 0;
    while quiet < 3 && Instant::now() < deadline {
        let answer = engine
            .query("SELECT count() FROM system.merges", "TSV")
            .await?;
        let running: u64 = String::from_utf8_lossy(&answer.data).trim().parse()?;
        quiet = if running == 0 { quiet + 1 } else { 0 };
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// CPU seconds (user and system, all threads) `pid` has used, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read /proc/{pid}/stat"))?;
    parse_cpu_seconds(&stat).with_context(|| format!("unexpected /proc/{pid}/stat: {stat}"))
}

/// utime + stime of a `/proc/<pid>/stat` line, in seconds (Linux counts them in 1/100 s).
fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    const TICKS_PER_SECOND: f64 = 100.0;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / TICKS_PER_SECOND)
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS line")
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_parameters_cycle_deterministically() {
        assert_eq!(params(0), ("ES", 0));
        assert_eq!(params(9), ("FR", 4));
        assert_eq!(params(8), params(48));
    }

    #[test]
    fn rss_of_this_process_is_readable() {
        assert!(rss_kib(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn cpu_time_comes_from_proc_stat() {
        let line = "1234 (roost local) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0";
        assert_eq!(parse_cpu_seconds(line), Some(3.0));
        assert_eq!(parse_cpu_seconds("garbage"), None);
        assert!(cpu_seconds(std::process::id()).unwrap() >= 0.0);
    }

    #[test]
    fn slices_share_the_requests_evenly() {
        let slices: Vec<usize> = (0..3).map(|i| slice_requests(10, 3, i)).collect();
        assert_eq!(slices, [4, 3, 3]);
        assert_eq!(
            (0..5).map(|i| slice_requests(2000, 5, i)).sum::<usize>(),
            2000
        );
    }

    #[test]
    fn medians_take_the_middle_or_the_mean_of_the_two_middles() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        let round = |seconds| Ingest {
            seconds,
            rows: 100,
            bytes: 0,
            cpu_seconds: 0.0,
            client_cpu_seconds: 0.0,
            after_cpu_seconds: 0.0,
        };
        let rounds = [round(1.0), round(4.0), round(2.0), round(3.0)];
        assert_eq!(median_round(rounds.iter()).seconds, 3.0);
    }

    #[test]
    fn quoted_integers_compare_equal_to_numbers() {
        let server = json!([{"events": "3880", "event": "view", "total": 1.5}]);
        let roost = json!([{"events": 3880, "event": "view", "total": 1.5}]);
        assert_eq!(
            with_integers_as_numbers(&server),
            with_integers_as_numbers(&roost)
        );
        assert_ne!(
            with_integers_as_numbers(&json!({"events": "3881"})),
            with_integers_as_numbers(&json!({"events": 3880}))
        );
    }

    #[test]
    fn tails_keep_the_last_lines() {
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
