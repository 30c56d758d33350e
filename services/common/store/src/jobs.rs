//! Job records. A job is inserted `waiting`; a worker claims it with a compare-and-set on its status,
//! so two workers never run the same job, and keeps a heartbeat while it works.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError};

/// A stored job.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobRecord {
    pub id: String,
    pub workspace_id: String,
    pub kind: String,
    pub status: String,
    pub datasource_id: String,
    pub datasource_name: String,
    pub pipe_id: String,
    pub pipe_name: String,
    /// JSON object: what the job runs.
    pub spec: String,
    /// JSON object: what it found and did.
    pub result: String,
    /// Hundredths of a percent.
    pub progress: i64,
    pub error: String,
    pub cancel_requested: bool,
    pub worker: String,
    pub heartbeat_at: String,
    pub created_at: String,
    pub updated_at: String,
    pub started_at: String,
    pub finished_at: String,
}

/// Which jobs a listing returns.
#[derive(Debug, Clone, Default)]
pub struct JobFilter<'a> {
    pub workspace_id: &'a str,
    pub status: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub pipe_id: Option<&'a str>,
    /// Only jobs created at or after this time (RFC 3339).
    pub since: Option<&'a str>,
    pub limit: i64,
}

/// A change a worker reports.
#[derive(Debug, Clone, Default)]
pub struct JobUpdate<'a> {
    pub status: Option<&'a str>,
    pub progress: Option<i64>,
    pub result: Option<&'a str>,
    pub error: Option<&'a str>,
    pub finished_at: Option<&'a str>,
}

const JOB_COLUMNS: &str = "SELECT id, workspace_id, kind, status, datasource_id, datasource_name, pipe_id, pipe_name, spec, result, progress, error, cancel_requested, worker, heartbeat_at, created_at, updated_at, started_at, finished_at FROM jobs";

fn job_from_row(row: &AnyRow) -> JobRecord {
    JobRecord {
        id: row.get(0),
        workspace_id: row.get(1),
        kind: row.get(2),
        status: row.get(3),
        datasource_id: row.get(4),
        datasource_name: row.get(5),
        pipe_id: row.get(6),
        pipe_name: row.get(7),
        spec: row.get(8),
        result: row.get(9),
        progress: row.get(10),
        error: row.get(11),
        cancel_requested: row.get::<i64, _>(12) != 0,
        worker: row.get(13),
        heartbeat_at: row.get(14),
        created_at: row.get(15),
        updated_at: row.get(16),
        started_at: row.get(17),
        finished_at: row.get(18),
    }
}

impl Store {
    /// Stores a new job.
    pub async fn insert_job(&self, job: &JobRecord) -> Result<(), StoreError> {
        crate::refuse_nul(
            "job",
            &[&job.spec, &job.result, &job.datasource_name, &job.pipe_name],
        )?;
        sqlx::query(
            "INSERT INTO jobs (id, workspace_id, kind, status, datasource_id, datasource_name, pipe_id, pipe_name, spec, result, progress, error, created_at, updated_at, started_at, finished_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(&job.id)
        .bind(&job.workspace_id)
        .bind(&job.kind)
        .bind(&job.status)
        .bind(&job.datasource_id)
        .bind(&job.datasource_name)
        .bind(&job.pipe_id)
        .bind(&job.pipe_name)
        .bind(&job.spec)
        .bind(&job.result)
        .bind(job.progress)
        .bind(&job.error)
        .bind(&job.created_at)
        .bind(&job.updated_at)
        .bind(&job.started_at)
        .bind(&job.finished_at)
        .execute(&self.pool)
        .await
        .map_err(|e| crate::conflict_or(e, "job"))?;
        Ok(())
    }

    /// One job of a workspace.
    pub async fn get_job(&self, workspace_id: &str, id: &str) -> Result<JobRecord, StoreError> {
        sqlx::query(&format!(
            "{JOB_COLUMNS} WHERE workspace_id = $1 AND id = $2"
        ))
        .bind(workspace_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|row| job_from_row(&row))
        .ok_or_else(|| StoreError::NotFound(format!("Job '{id}'")))
    }

    /// The workspace's jobs, newest first.
    pub async fn list_jobs(&self, filter: &JobFilter<'_>) -> Result<Vec<JobRecord>, StoreError> {
        let mut sql = format!("{JOB_COLUMNS} WHERE workspace_id = $1");
        let mut binds = vec![filter.workspace_id];
        for (column, value) in [
            ("status", filter.status),
            ("kind", filter.kind),
            ("pipe_id", filter.pipe_id),
        ] {
            if let Some(value) = value {
                binds.push(value);
                sql.push_str(&format!(" AND {column} = ${}", binds.len()));
            }
        }
        if let Some(since) = filter.since {
            binds.push(since);
            sql.push_str(&format!(" AND created_at >= ${}", binds.len()));
        }
        sql.push_str(&format!(
            " ORDER BY created_at DESC, id DESC LIMIT {}",
            filter.limit.max(1)
        ));
        let mut query = sqlx::query(&sql);
        for value in binds {
            query = query.bind(value);
        }
        let rows = query.fetch_all(&self.pool).await?;
        Ok(rows.iter().map(job_from_row).collect())
    }

    /// Waiting jobs of every workspace, oldest first: what workers may claim.
    pub async fn waiting_jobs(&self, limit: i64) -> Result<Vec<JobRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "{JOB_COLUMNS} WHERE status = 'waiting' ORDER BY created_at, id LIMIT {}",
            limit.max(1)
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(job_from_row).collect())
    }

    /// Jobs marked working whose worker has not reported since `stale_before`: their worker died.
    pub async fn abandoned_jobs(&self, stale_before: &str) -> Result<Vec<JobRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "{JOB_COLUMNS} WHERE status = 'working' AND heartbeat_at < $1 ORDER BY created_at"
        ))
        .bind(stale_before)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(job_from_row).collect())
    }

    /// Claims a waiting job for `worker`: true when this worker won it.
    pub async fn claim_job(&self, id: &str, worker: &str, now: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET status = 'working', worker = $2, heartbeat_at = $3, started_at = $3, updated_at = $3 \
             WHERE id = $1 AND status = 'waiting'",
        )
        .bind(id)
        .bind(worker)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Puts an abandoned job back in the queue, or fails it: only if it is still `working` under the
    /// heartbeat that was seen (so a live worker's job is never taken).
    pub async fn release_abandoned_job(
        &self,
        job: &JobRecord,
        update: &JobUpdate<'_>,
        now: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET status = $3, error = $4, finished_at = $5, worker = '', updated_at = $6 \
             WHERE id = $1 AND status = 'working' AND heartbeat_at = $2",
        )
        .bind(&job.id)
        .bind(&job.heartbeat_at)
        .bind(update.status.unwrap_or("waiting"))
        .bind(update.error.unwrap_or_default())
        .bind(update.finished_at.unwrap_or_default())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a worker's report on a job it holds; returns the job as stored afterwards (so the
    /// worker sees a cancellation request).
    pub async fn update_job(
        &self,
        id: &str,
        worker: &str,
        update: &JobUpdate<'_>,
        now: &str,
    ) -> Result<JobRecord, StoreError> {
        let mut sets = vec![
            "updated_at = $3".to_string(),
            "heartbeat_at = $3".to_string(),
        ];
        let mut binds: Vec<String> = Vec::new();
        let mut push = |column: &str, value: String| {
            binds.push(value);
            sets.push(format!("{column} = ${}", binds.len() + 3));
        };
        if let Some(status) = update.status {
            push("status", status.to_string());
        }
        if let Some(result) = update.result {
            push("result", result.to_string());
        }
        if let Some(error) = update.error {
            push("error", error.to_string());
        }
        if let Some(finished_at) = update.finished_at {
            push("finished_at", finished_at.to_string());
        }
        let progress = update
            .progress
            .map(|p| format!(", progress = {}", p.clamp(0, 10_000)))
            .unwrap_or_default();
        let sql = format!(
            "UPDATE jobs SET {}{progress} WHERE id = $1 AND worker = $2",
            sets.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(id).bind(worker).bind(now);
        for value in &binds {
            query = query.bind(value);
        }
        query.execute(&self.pool).await?;
        let row = sqlx::query(&format!("{JOB_COLUMNS} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("Job '{id}'")))?;
        Ok(job_from_row(&row))
    }

    /// Cancels a job: a waiting one at once (true), a working one by asking its worker to stop.
    /// Returns the job as stored afterwards.
    pub async fn cancel_job(
        &self,
        workspace_id: &str,
        id: &str,
        now: &str,
    ) -> Result<JobRecord, StoreError> {
        sqlx::query(
            "UPDATE jobs SET status = 'cancelled', updated_at = $3, finished_at = $3 \
             WHERE workspace_id = $1 AND id = $2 AND status = 'waiting'",
        )
        .bind(workspace_id)
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        sqlx::query(
            "UPDATE jobs SET cancel_requested = 1, updated_at = $3 \
             WHERE workspace_id = $1 AND id = $2 AND status = 'working'",
        )
        .bind(workspace_id)
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        self.get_job(workspace_id, id).await
    }
}
