//! Running work as a recorded job: the log entry at start and end, and the metrics per
//! kind an operations team alerts on.

use std::fmt::Display;
use std::future::Future;

use chrono::Utc;

use assay_engine::store::jobs::{Job, JobKind, JobStatus, JobStore};

use super::state::AppState;

/// What a finished job reports beyond its status.
#[derive(Debug, Clone, Default)]
pub struct JobOutcome {
    pub rows: Option<u64>,
    pub rejects: Option<u64>,
    pub batch_id: Option<String>,
    pub run_id: Option<String>,
    pub note: Option<String>,
}

impl AppState {
    /// Runs `work` as a job of `kind`: recorded as running before it starts and with its
    /// outcome or error when it ends. The work is never held back by the log: a log that
    /// cannot be written is reported in the server's log and the work goes on.
    ///
    /// # Errors
    /// `work`'s own error, after it is recorded.
    pub async fn run_job<T, E: Display>(
        &self,
        kind: JobKind,
        trigger: &str,
        source: Option<String>,
        work: impl Future<Output = Result<(T, JobOutcome), E>>,
    ) -> Result<T, E> {
        let job = self.jobs.start(kind, trigger, source, Utc::now());
        if let Err(e) = &job {
            tracing::warn!(
                kind = kind.as_str(),
                "recording a job's start in {}: {e}",
                self.jobs.location()
            );
        }
        let result = work.await;
        let Ok(mut job) = job else {
            return result.map(|(value, _)| value);
        };
        job.ended_at = Some(Utc::now());
        let value = match result {
            Ok((value, outcome)) => {
                job.status = JobStatus::Succeeded;
                job.rows = outcome.rows;
                job.rejects = outcome.rejects;
                job.batch_id = outcome.batch_id;
                job.run_id = outcome.run_id;
                job.note = outcome.note;
                Ok(value)
            }
            Err(e) => {
                job.status = JobStatus::Failed;
                job.error = Some(format!("{e:#}"));
                tracing::error!(job_id = %job.job_id, kind = kind.as_str(), "job failed: {e:#}");
                Err(e)
            }
        };
        record_metrics(&job);
        if let Err(e) = self.jobs.save(&job) {
            tracing::warn!(job_id = %job.job_id, "recording a job's end in {}: {e}", self.jobs.location());
        }
        value
    }
}

fn record_metrics(job: &Job) {
    let kind = job.kind.as_str();
    metrics::counter!("assay_jobs_total", "kind" => kind, "status" => job.status.as_str())
        .increment(1);
    if let Some(end) = job.ended_at {
        metrics::histogram!("assay_job_duration_seconds", "kind" => kind).record(job.seconds(end));
        if job.status == JobStatus::Succeeded {
            metrics::gauge!("assay_job_last_success_timestamp_seconds", "kind" => kind)
                .set(end.timestamp_millis() as f64 / 1000.0);
        }
    }
}

/// Sets, for a scrape, how long ago each kind last succeeded (from the durable log, so
/// it holds across restarts); a kind that never succeeded has no value.
pub fn record_time_since_success(jobs: &JobStore) {
    let now = Utc::now();
    for kind in JobKind::ALL {
        if let Some(end) = jobs
            .last(kind, &[JobStatus::Succeeded], None)
            .and_then(|j| j.ended_at)
        {
            metrics::gauge!("assay_job_seconds_since_success", "kind" => kind.as_str())
                .set((now - end).num_milliseconds() as f64 / 1000.0);
        }
    }
}
