//! Jobs: claimed by one worker, progress and cancellation, abandoned-job recovery, listings.

use roost_store::{JobFilter, JobRecord, JobUpdate, ScheduleRecord, VariableRecord};

use crate::backend::TestCatalog;
use crate::fixtures::{NOW, assert_conflict, assert_not_found, seed, workspace};

conformance!(
    a_waiting_job_is_claimed_by_exactly_one_worker,
    a_worker_reports_progress_and_sees_a_cancellation,
    an_abandoned_job_is_released_only_under_the_heartbeat_seen,
    job_listings_filter_and_put_the_newest_first,
    a_schedule_tick_is_claimed_once_and_survives_an_upsert,
    variables_are_unique_per_workspace_and_change_in_place,
);

fn job(id: &str, workspace_id: &str, kind: &str, created_at: &str) -> JobRecord {
    JobRecord {
        id: id.into(),
        workspace_id: workspace_id.into(),
        kind: kind.into(),
        status: "waiting".into(),
        spec: "{}".into(),
        result: "{}".into(),
        created_at: created_at.into(),
        updated_at: created_at.into(),
        ..JobRecord::default()
    }
}

async fn a_waiting_job_is_claimed_by_exactly_one_worker(catalog: TestCatalog) {
    let store = catalog.connect().await;
    seed(&store).await;
    store
        .insert_job(&job("j1", "w1", "copy", NOW))
        .await
        .unwrap();
    assert_conflict(store.insert_job(&job("j1", "w1", "copy", NOW)).await);
    assert_eq!(store.waiting_jobs(10).await.unwrap().len(), 1);

    let mut claims = Vec::new();
    for worker in ["a", "b", "c", "d"] {
        let store = store.clone();
        claims.push(tokio::spawn(async move {
            store.claim_job("j1", worker, NOW).await.unwrap()
        }));
    }
    let mut won = 0;
    for claim in claims {
        won += usize::from(claim.await.unwrap());
    }
    assert_eq!(won, 1);
    let claimed = store.get_job("w1", "j1").await.unwrap();
    assert_eq!(claimed.status, "working");
    assert_eq!(claimed.started_at, NOW);
    assert!(store.waiting_jobs(10).await.unwrap().is_empty());
    assert_not_found(store.get_job("w2", "j1").await);
}

async fn a_worker_reports_progress_and_sees_a_cancellation(catalog: TestCatalog) {
    let store = catalog.connect().await;
    seed(&store).await;
    store
        .insert_job(&job("j1", "w1", "copy", NOW))
        .await
        .unwrap();
    assert!(store.claim_job("j1", "a", NOW).await.unwrap());
    let later = "2026-01-01 00:00:05.000000";
    let progress = JobUpdate {
        progress: Some(2_500),
        ..JobUpdate::default()
    };
    let reported = store.update_job("j1", "a", &progress, later).await.unwrap();
    assert_eq!(
        (reported.progress, reported.heartbeat_at.as_str()),
        (2_500, later)
    );
    // Another worker's report changes nothing: the job is not its own.
    let stray = store
        .update_job(
            "j1",
            "b",
            &JobUpdate {
                progress: Some(9_000),
                ..JobUpdate::default()
            },
            later,
        )
        .await
        .unwrap();
    assert_eq!(stray.progress, 2_500);

    let asked = store.cancel_job("w1", "j1", later).await.unwrap();
    assert!(asked.cancel_requested);
    assert_eq!(
        asked.status, "working",
        "a working job stops at its worker's next step"
    );
    let seen = store.update_job("j1", "a", &progress, later).await.unwrap();
    assert!(seen.cancel_requested);
    let done = JobUpdate {
        status: Some("cancelled"),
        finished_at: Some(later),
        ..JobUpdate::default()
    };
    let finished = store.update_job("j1", "a", &done, later).await.unwrap();
    assert_eq!(finished.status, "cancelled");

    // A waiting job is cancelled at once.
    store
        .insert_job(&job("j2", "w1", "copy", NOW))
        .await
        .unwrap();
    let cancelled = store.cancel_job("w1", "j2", later).await.unwrap();
    assert_eq!(
        (cancelled.status.as_str(), cancelled.finished_at.as_str()),
        ("cancelled", later)
    );
    assert_not_found(store.cancel_job("w2", "j2", later).await);
}

async fn an_abandoned_job_is_released_only_under_the_heartbeat_seen(catalog: TestCatalog) {
    let store = catalog.connect().await;
    seed(&store).await;
    store
        .insert_job(&job("j1", "w1", "delete_data", NOW))
        .await
        .unwrap();
    assert!(store.claim_job("j1", "a", NOW).await.unwrap());
    let stale_before = "2026-01-01 00:01:00.000000";
    let abandoned = store.abandoned_jobs(stale_before).await.unwrap();
    assert_eq!(abandoned.len(), 1);
    // The worker was alive after all: its heartbeat moved, so the release must not happen.
    let beat = "2026-01-01 00:00:30.000000";
    store
        .update_job("j1", "a", &JobUpdate::default(), beat)
        .await
        .unwrap();
    let requeue = JobUpdate {
        status: Some("waiting"),
        ..JobUpdate::default()
    };
    assert!(
        !store
            .release_abandoned_job(&abandoned[0], &requeue, stale_before)
            .await
            .unwrap()
    );
    let seen_again = store.abandoned_jobs(stale_before).await.unwrap();
    assert!(
        store
            .release_abandoned_job(&seen_again[0], &requeue, stale_before)
            .await
            .unwrap()
    );
    let released = store.get_job("w1", "j1").await.unwrap();
    assert_eq!(
        (released.status.as_str(), released.worker.as_str()),
        ("waiting", "")
    );
    assert!(store.abandoned_jobs(stale_before).await.unwrap().is_empty());
    assert_eq!(store.waiting_jobs(10).await.unwrap().len(), 1);
}

async fn job_listings_filter_and_put_the_newest_first(catalog: TestCatalog) {
    let store = catalog.connect().await;
    seed(&store).await;
    store
        .insert_workspace(&workspace("w2", "other"))
        .await
        .unwrap();
    for (id, workspace_id, kind, at) in [
        ("j1", "w1", "copy", "2026-01-01 00:00:01.000000"),
        ("j2", "w1", "delete_data", "2026-01-01 00:00:02.000000"),
        ("j3", "w1", "copy", "2026-01-01 00:00:03.000000"),
        ("j4", "w2", "copy", "2026-01-01 00:00:04.000000"),
    ] {
        store
            .insert_job(&job(id, workspace_id, kind, at))
            .await
            .unwrap();
    }
    let mut pipe_job = job("j5", "w1", "copy", "2026-01-01 00:00:05.000000");
    pipe_job.pipe_id = "p1".into();
    store.insert_job(&pipe_job).await.unwrap();
    assert!(store.claim_job("j3", "a", NOW).await.unwrap());
    let ids = |jobs: Vec<JobRecord>| jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
    let all = JobFilter {
        workspace_id: "w1",
        limit: 100,
        ..JobFilter::default()
    };
    assert_eq!(
        ids(store.list_jobs(&all).await.unwrap()),
        ["j5", "j3", "j2", "j1"]
    );
    let copies = JobFilter {
        kind: Some("copy"),
        ..all.clone()
    };
    assert_eq!(
        ids(store.list_jobs(&copies).await.unwrap()),
        ["j5", "j3", "j1"]
    );
    let working = JobFilter {
        status: Some("working"),
        ..all.clone()
    };
    assert_eq!(ids(store.list_jobs(&working).await.unwrap()), ["j3"]);
    let of_pipe = JobFilter {
        pipe_id: Some("p1"),
        ..all.clone()
    };
    assert_eq!(ids(store.list_jobs(&of_pipe).await.unwrap()), ["j5"]);
    let recent = JobFilter {
        since: Some("2026-01-01 00:00:02.000000"),
        limit: 2,
        ..all.clone()
    };
    assert_eq!(ids(store.list_jobs(&recent).await.unwrap()), ["j5", "j3"]);
}

fn schedule(pipe_id: &str, name: &str, cron: &str) -> ScheduleRecord {
    ScheduleRecord {
        pipe_id: pipe_id.into(),
        workspace_id: "w1".into(),
        pipe_name: name.into(),
        kind: "copy".into(),
        cron: cron.into(),
        status: "running".into(),
        job_spec: "{}".into(),
        last_tick_at: String::new(),
        created_at: NOW.into(),
        updated_at: NOW.into(),
    }
}

async fn a_schedule_tick_is_claimed_once_and_survives_an_upsert(catalog: TestCatalog) {
    let store = catalog.connect().await;
    seed(&store).await;
    store
        .upsert_schedule(&schedule("p2", "b_pipe", "* * * * *"))
        .await
        .unwrap();
    store
        .upsert_schedule(&schedule("p1", "a_pipe", "0 * * * *"))
        .await
        .unwrap();
    let tick = "2026-01-01 00:01:00.000000";
    let mut claims = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        claims.push(tokio::spawn(async move {
            store.claim_tick("p2", "", tick).await.unwrap()
        }));
    }
    let mut won = 0;
    for claim in claims {
        won += usize::from(claim.await.unwrap());
    }
    assert_eq!(won, 1);
    // Changing the schedule keeps the tick that already ran.
    let mut paused = schedule("p2", "b_pipe", "*/5 * * * *");
    paused.status = "paused".into();
    store.upsert_schedule(&paused).await.unwrap();
    let stored = store.get_schedule("p2").await.unwrap();
    assert_eq!(
        (
            stored.last_tick_at.as_str(),
            stored.cron.as_str(),
            stored.status.as_str()
        ),
        (tick, "*/5 * * * *", "paused")
    );
    assert!(!store.claim_tick("p2", "", tick).await.unwrap());

    let names: Vec<String> = store
        .list_schedules(Some("w1"))
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.pipe_name)
        .collect();
    assert_eq!(names, ["a_pipe", "b_pipe"]);
    assert!(store.list_schedules(Some("w2")).await.unwrap().is_empty());
    assert!(store.delete_schedule("p1").await.unwrap());
    assert!(!store.delete_schedule("p1").await.unwrap());
    assert_not_found(store.get_schedule("p1").await);
}

fn variable(name: &str, value: &str) -> VariableRecord {
    VariableRecord {
        workspace_id: "w1".into(),
        name: name.into(),
        kind: "secret".into(),
        value: value.into(),
        edited_by: "u1".into(),
        created_at: NOW.into(),
        updated_at: NOW.into(),
    }
}

async fn variables_are_unique_per_workspace_and_change_in_place(catalog: TestCatalog) {
    let store = catalog.connect().await;
    seed(&store).await;
    store
        .insert_workspace(&workspace("w2", "other"))
        .await
        .unwrap();
    store
        .insert_variable(&variable("B_KEY", "b"))
        .await
        .unwrap();
    store
        .insert_variable(&variable("A_KEY", "a"))
        .await
        .unwrap();
    assert_conflict(store.insert_variable(&variable("A_KEY", "again")).await);
    let elsewhere = VariableRecord {
        workspace_id: "w2".into(),
        ..variable("A_KEY", "other")
    };
    store.insert_variable(&elsewhere).await.unwrap();

    let mut changed = variable("A_KEY", "a2");
    changed.updated_at = "2026-01-02 00:00:00.000000".into();
    store.update_variable(&changed).await.unwrap();
    let read = store.get_variable("w1", "A_KEY").await.unwrap();
    assert_eq!((read.value.as_str(), read.created_at.as_str()), ("a2", NOW));
    assert_eq!(
        store.get_variable("w2", "A_KEY").await.unwrap().value,
        "other"
    );
    let names: Vec<String> = store
        .list_variables("w1")
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(names, ["A_KEY", "B_KEY"]);
    assert_not_found(store.update_variable(&variable("MISSING", "x")).await);
    store.delete_variable("w1", "A_KEY").await.unwrap();
    assert_not_found(store.delete_variable("w1", "A_KEY").await);
    assert_not_found(store.get_variable("w1", "A_KEY").await);
    assert_eq!(
        store.get_variable("w2", "A_KEY").await.unwrap().value,
        "other"
    );
}
