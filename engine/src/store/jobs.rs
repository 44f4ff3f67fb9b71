//! The daily loop's job log: every ingest, rollup refresh and decision run a server
//! does, with when it ran, how it ended and what it did.
//!
//! A job is one small JSON file, `jobs/<job_id>.json`, written whole when the job starts
//! and again when it ends (a key holds a whole object or none, on a folder and on an
//! object store alike). Ids start with the start time, so their names sort by it. A job
//! still `running` when a server opens the log was cut short by a process that died: it
//! is marked `interrupted` then, so no job stays running forever.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::storage::Storage;

/// The log's folder in the dataset.
const DIR: &str = "jobs";

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// One file of a watched folder taken in as a batch.
    Ingest,
    /// The daily rollup brought up to date after new events.
    Rollup,
    /// A decision run computed (and published when it was due).
    Decide,
}

impl JobKind {
    pub const ALL: [JobKind; 3] = [JobKind::Ingest, JobKind::Rollup, JobKind::Decide];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Ingest => "ingest",
            JobKind::Rollup => "rollup",
            JobKind::Decide => "decide",
        }
    }
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Running,
    Succeeded,
    Failed,
    /// The process running it ended before it did.
    Interrupted,
}

impl JobStatus {
    pub const ALL: [JobStatus; 4] = [
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Interrupted => "interrupted",
        }
    }
}

/// One job, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub job_id: String,
    pub kind: JobKind,
    pub status: JobStatus,
    /// What started it: `watch`, `schedule`, `after-ingest`, or the API user who asked.
    pub trigger: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// The file an ingest took, as users name it.
    pub source: Option<String>,
    /// Rows the job produced: events added, rollup rows written, decision rows.
    pub rows: Option<u64>,
    /// Rows an ingest rejected (they are in its rejects file).
    pub rejects: Option<u64>,
    pub error: Option<String>,
    /// The ingest batch (its id is a digest of the file: the same file is one batch).
    pub batch_id: Option<String>,
    /// The decision run a decide job stored.
    pub run_id: Option<String>,
    /// Where the job put what it took (a watched file's new place), or other facts a
    /// person reading the job wants: "already ingested", "published".
    pub note: Option<String>,
}

impl Job {
    /// Seconds from start to end (to `now` while running).
    pub fn seconds(&self, now: DateTime<Utc>) -> f64 {
        (self.ended_at.unwrap_or(now) - self.started_at).num_milliseconds() as f64 / 1000.0
    }
}

/// Which jobs to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub kind: Option<JobKind>,
    pub status: Option<JobStatus>,
    /// Only jobs whose id sorts before this one (the previous page's last id).
    pub before: Option<String>,
    pub limit: usize,
}

/// The durable job log and its in-memory view.
#[derive(Debug)]
pub struct JobStore {
    storage: Storage,
    jobs: RwLock<BTreeMap<String, Job>>,
}

impl JobStore {
    /// Opens the log in the dataset at `storage`, marking the jobs a dead process left
    /// running as interrupted.
    ///
    /// # Errors
    /// The log cannot be listed, read or written; an entry cannot be parsed (named).
    pub fn open(storage: Storage, now: DateTime<Utc>) -> Result<Arc<Self>> {
        let mut jobs = BTreeMap::new();
        for entry in storage.list(DIR)? {
            if !entry.key.ends_with(".json") || entry.under(DIR).contains('/') {
                continue;
            }
            let text = storage.read(&entry.key)?;
            let job: Job = serde_json::from_slice(&text).map_err(|e| EngineError::Store {
                path: storage.display(&entry.key),
                message: format!("unreadable job: {e}"),
            })?;
            jobs.insert(job.job_id.clone(), job);
        }
        let store = Self {
            storage,
            jobs: RwLock::new(jobs),
        };
        let cut_short: Vec<Job> = store
            .read()
            .values()
            .filter(|j| j.status == JobStatus::Running)
            .cloned()
            .collect();
        for mut job in cut_short {
            job.status = JobStatus::Interrupted;
            job.ended_at = Some(now);
            job.error = Some("the server ended before the job did".into());
            store.save(&job)?;
        }
        Ok(Arc::new(store))
    }

    /// Records a job as started, durably, and returns it.
    ///
    /// # Errors
    /// The log cannot be written.
    pub fn start(
        &self,
        kind: JobKind,
        trigger: &str,
        source: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Job> {
        let job = Job {
            job_id: format!(
                "{}-{}-{:06x}",
                now.format("%Y%m%dT%H%M%S%.6fZ"),
                kind.as_str(),
                rand::random::<u32>() & 0xff_ffff
            ),
            kind,
            status: JobStatus::Running,
            trigger: trigger.to_owned(),
            started_at: now,
            ended_at: None,
            source,
            rows: None,
            rejects: None,
            error: None,
            batch_id: None,
            run_id: None,
            note: None,
        };
        self.save(&job)?;
        Ok(job)
    }

    /// Stores a job's new state (its end, usually).
    ///
    /// # Errors
    /// The log cannot be written; the job's previous state stays stored.
    pub fn save(&self, job: &Job) -> Result<()> {
        let body = serde_json::to_vec_pretty(job).map_err(|e| EngineError::Store {
            path: self.storage.display(DIR),
            message: format!("job {}: {e}", job.job_id),
        })?;
        self.storage
            .write(&format!("{DIR}/{}.json", job.job_id), body.into())?;
        self.jobs
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(job.job_id.clone(), job.clone());
        Ok(())
    }

    pub fn get(&self, job_id: &str) -> Option<Job> {
        self.read().get(job_id).cloned()
    }

    /// The jobs `filter` picks, newest first.
    pub fn list(&self, filter: &JobFilter) -> Vec<Job> {
        let jobs = self.read();
        let upper = match &filter.before {
            Some(before) => jobs.range::<String, _>(..before.clone()),
            None => jobs.range::<String, _>(..),
        };
        upper
            .rev()
            .map(|(_, j)| j)
            .filter(|j| filter.kind.is_none_or(|k| j.kind == k))
            .filter(|j| filter.status.is_none_or(|s| j.status == s))
            .take(filter.limit)
            .cloned()
            .collect()
    }

    /// The newest job of `kind` in one of `statuses`, and whose trigger is `trigger`
    /// when given.
    pub fn last(
        &self,
        kind: JobKind,
        statuses: &[JobStatus],
        trigger: Option<&str>,
    ) -> Option<Job> {
        self.read()
            .values()
            .rev()
            .find(|j| {
                j.kind == kind
                    && statuses.contains(&j.status)
                    && trigger.is_none_or(|t| j.trigger == t)
            })
            .cloned()
    }

    /// The median duration of the succeeded jobs of `kind` (their last 50), if any ran.
    pub fn median_seconds(&self, kind: JobKind) -> Option<f64> {
        let jobs = self.read();
        let mut seconds: Vec<f64> = jobs
            .values()
            .rev()
            .filter(|j| j.kind == kind && j.status == JobStatus::Succeeded)
            .take(50)
            .filter_map(|j| j.ended_at.map(|end| j.seconds(end)))
            .collect();
        if seconds.is_empty() {
            return None;
        }
        seconds.sort_by(f64::total_cmp);
        Some(seconds[seconds.len() / 2])
    }

    /// Where the log is, for messages.
    pub fn location(&self) -> String {
        self.storage.display(DIR)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Job>> {
        self.jobs
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn jobs_survive_a_restart_and_one_left_running_is_marked_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let store = JobStore::open(Storage::local(dir.path()), at(0)).unwrap();
        let mut done = store
            .start(JobKind::Ingest, "watch", Some("a.csv".into()), at(1))
            .unwrap();
        done.status = JobStatus::Succeeded;
        done.ended_at = Some(at(3));
        done.rows = Some(10);
        store.save(&done).unwrap();
        let running = store
            .start(JobKind::Decide, "schedule", None, at(5))
            .unwrap();
        drop(store);

        let reopened = JobStore::open(Storage::local(dir.path()), at(9)).unwrap();
        assert_eq!(reopened.get(&done.job_id), Some(done.clone()));
        let cut = reopened.get(&running.job_id).unwrap();
        assert_eq!(cut.status, JobStatus::Interrupted);
        assert_eq!(cut.ended_at, Some(at(9)));
        assert_eq!(reopened.median_seconds(JobKind::Ingest), Some(2.0));
        assert_eq!(reopened.median_seconds(JobKind::Decide), None);
    }

    #[test]
    fn listing_is_newest_first_filtered_and_paged_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = JobStore::open(Storage::local(dir.path()), at(0)).unwrap();
        let ids: Vec<String> = (0..5)
            .map(|i| {
                let kind = if i % 2 == 0 {
                    JobKind::Ingest
                } else {
                    JobKind::Decide
                };
                store.start(kind, "watch", None, at(i)).unwrap().job_id
            })
            .collect();
        let all = |filter: JobFilter| -> Vec<String> {
            store.list(&filter).into_iter().map(|j| j.job_id).collect()
        };
        let page = all(JobFilter {
            limit: 2,
            ..JobFilter::default()
        });
        assert_eq!(page, vec![ids[4].clone(), ids[3].clone()]);
        let next = all(JobFilter {
            limit: 2,
            before: page.last().cloned(),
            ..JobFilter::default()
        });
        assert_eq!(next, vec![ids[2].clone(), ids[1].clone()]);
        let ingests = all(JobFilter {
            kind: Some(JobKind::Ingest),
            limit: 10,
            ..JobFilter::default()
        });
        assert_eq!(
            ingests,
            vec![ids[4].clone(), ids[2].clone(), ids[0].clone()]
        );
        assert_eq!(
            store
                .last(JobKind::Decide, &[JobStatus::Running], Some("watch"))
                .map(|j| j.job_id),
            Some(ids[3].clone())
        );
    }
}
