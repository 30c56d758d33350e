//! Schedules of copy and sink pipes. `last_tick_at` is advanced with a compare-and-set, so each tick
//! is claimed by exactly one scheduler, however many run.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError};

/// A pipe's schedule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScheduleRecord {
    pub pipe_id: String,
    pub workspace_id: String,
    pub pipe_name: String,
    /// copy or sink.
    pub kind: String,
    pub cron: String,
    /// running or paused.
    pub status: String,
    /// JSON object: the spec of the job each tick submits.
    pub job_spec: String,
    /// The scheduled time last run (RFC 3339), empty before the first.
    pub last_tick_at: String,
    pub created_at: String,
    pub updated_at: String,
}

const SCHEDULE_COLUMNS: &str = "SELECT pipe_id, workspace_id, pipe_name, kind, cron, status, job_spec, last_tick_at, created_at, updated_at FROM schedules";

fn schedule_from_row(row: &AnyRow) -> ScheduleRecord {
    ScheduleRecord {
        pipe_id: row.get(0),
        workspace_id: row.get(1),
        pipe_name: row.get(2),
        kind: row.get(3),
        cron: row.get(4),
        status: row.get(5),
        job_spec: row.get(6),
        last_tick_at: row.get(7),
        created_at: row.get(8),
        updated_at: row.get(9),
    }
}

impl Store {
    /// Creates or replaces a pipe's schedule; a replaced schedule keeps its last tick, so changing a
    /// schedule never re-runs a tick that already ran.
    pub async fn upsert_schedule(&self, schedule: &ScheduleRecord) -> Result<(), StoreError> {
        crate::refuse_nul(
            "schedule",
            &[&schedule.pipe_name, &schedule.cron, &schedule.job_spec],
        )?;
        sqlx::query(
            "INSERT INTO schedules (pipe_id, workspace_id, pipe_name, kind, cron, status, job_spec, last_tick_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (pipe_id) DO UPDATE SET pipe_name = excluded.pipe_name, kind = excluded.kind, cron = excluded.cron, \
             status = excluded.status, job_spec = excluded.job_spec, updated_at = excluded.updated_at",
        )
        .bind(&schedule.pipe_id)
        .bind(&schedule.workspace_id)
        .bind(&schedule.pipe_name)
        .bind(&schedule.kind)
        .bind(&schedule.cron)
        .bind(&schedule.status)
        .bind(&schedule.job_spec)
        .bind(&schedule.last_tick_at)
        .bind(&schedule.created_at)
        .bind(&schedule.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One pipe's schedule.
    pub async fn get_schedule(&self, pipe_id: &str) -> Result<ScheduleRecord, StoreError> {
        sqlx::query(&format!("{SCHEDULE_COLUMNS} WHERE pipe_id = $1"))
            .bind(pipe_id)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| schedule_from_row(&row))
            .ok_or_else(|| StoreError::NotFound(format!("Schedule of pipe '{pipe_id}'")))
    }

    /// A workspace's schedules, or every workspace's with `None`, by pipe name.
    pub async fn list_schedules(
        &self,
        workspace_id: Option<&str>,
    ) -> Result<Vec<ScheduleRecord>, StoreError> {
        let rows = match workspace_id {
            Some(workspace_id) => {
                sqlx::query(&format!("{SCHEDULE_COLUMNS} WHERE workspace_id = $1"))
                    .bind(workspace_id)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => sqlx::query(SCHEDULE_COLUMNS).fetch_all(&self.pool).await?,
        };
        let mut schedules: Vec<ScheduleRecord> = rows.iter().map(schedule_from_row).collect();
        schedules.sort_by(|a, b| (&a.pipe_name, &a.pipe_id).cmp(&(&b.pipe_name, &b.pipe_id)));
        Ok(schedules)
    }

    /// Removes a pipe's schedule; true when there was one.
    pub async fn delete_schedule(&self, pipe_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM schedules WHERE pipe_id = $1")
            .bind(pipe_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Claims the tick at `tick` of a running schedule whose last tick is `previous`: true for
    /// exactly one caller.
    pub async fn claim_tick(
        &self,
        pipe_id: &str,
        previous: &str,
        tick: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE schedules SET last_tick_at = $3 WHERE pipe_id = $1 AND last_tick_at = $2 AND status = 'running'",
        )
        .bind(pipe_id)
        .bind(previous)
        .bind(tick)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
