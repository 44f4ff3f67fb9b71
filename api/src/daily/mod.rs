//! The daily loop of `assay serve`: new files in a landing place taken in, the rollup
//! brought up to date, and decision runs when they are due, each step a recorded job
//! (`GET /v1/jobs`).
//!
//! One look every `interval`: ready files are ingested one batch each, in name order;
//! after any added events the engine takes them in and the rollup is refreshed, then a
//! run is computed and published if `--decide-after-ingest`. A `--decide-at` run is due
//! when no scheduled run started since the newest due time, so a server that was down
//! at the due time runs it when it is back. Runs go one at a time, and one that fails
//! leaves the served run served.

pub mod schedule;
pub mod watch;

use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::anyhow;
use chrono::Utc;

use assay_engine::ingest::{self, Format, IngestRequest};
use assay_engine::storage::Entry;
use assay_engine::store::jobs::{JobKind, JobStatus};

use crate::server::jobs::JobOutcome;
use crate::server::state::AppState;
use schedule::DecideAt;
use watch::Landing;

/// What starts jobs without a person.
#[derive(Debug, Clone, Default)]
pub struct DailyConfig {
    pub watch: Option<WatchConfig>,
    pub decide_at: Option<DecideAt>,
    pub decide_after_ingest: bool,
    /// How often the landing place and the schedule are looked at.
    pub interval: Duration,
}

/// The landing place and how to read its files.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    pub location: String,
    pub format: Format,
    /// The market of formats that carry none.
    pub market: Option<String>,
}

/// Job triggers, as recorded.
const WATCH: &str = "watch";
const AFTER_INGEST: &str = "after-ingest";
const SCHEDULE: &str = "schedule";

impl DailyConfig {
    pub fn is_on(&self) -> bool {
        self.watch.is_some() || self.decide_at.is_some()
    }

    /// Looks every `interval` until the state is gone.
    pub async fn run(self, state: Weak<AppState>, mut landing: Option<Landing>) {
        loop {
            let Some(state) = state.upgrade() else {
                return;
            };
            self.look(&state, landing.as_mut()).await;
            drop(state);
            tokio::time::sleep(self.interval).await;
        }
    }

    async fn look(&self, state: &Arc<AppState>, landing: Option<&mut Landing>) {
        let mut added = 0;
        if let Some(landing) = landing {
            match landing.ready() {
                Ok(files) => {
                    for entry in files {
                        added += self.ingest(state, landing, &entry).await;
                    }
                }
                Err(e) => tracing::warn!("looking for new files: {e:#}"),
            }
        }
        if added > 0 {
            if let Err(e) = state.engine.reload_events().await {
                tracing::error!("taking in the new events: {e}");
                return;
            }
            if state.refresh_rollup(AFTER_INGEST).await.is_ok() && self.decide_after_ingest {
                let _ = state.recompute(None, true, AFTER_INGEST).await;
            }
        }
        if let Some(at) = self.decide_at {
            let due = at.latest_due(Utc::now());
            let last = state.jobs.last(
                JobKind::Decide,
                &[JobStatus::Succeeded, JobStatus::Failed],
                Some(SCHEDULE),
            );
            if last.is_none_or(|j| j.started_at < due) {
                // Failures are recorded as jobs; the next is due tomorrow.
                let _ = state.recompute(None, true, SCHEDULE).await;
            }
        }
    }

    /// Ingests one file as a job; returns the events it added.
    async fn ingest(&self, state: &AppState, landing: &Landing, entry: &Entry) -> u64 {
        let Some(watch) = &self.watch else {
            return 0;
        };
        let source = landing.display(&entry.key);
        let work = async {
            let copy = landing.local_copy(entry)?;
            let request = IngestRequest {
                format: watch.format,
                sources: vec![copy.path.clone()],
                market: watch.market.clone(),
                styles: None,
                show_progress: false,
                max_record_bytes: ingest::DEFAULT_MAX_RECORD_BYTES,
                max_row_group_bytes: ingest::DEFAULT_MAX_ROW_GROUP_BYTES,
            };
            let dataset = state.engine.dataset().clone();
            let result = tokio::task::spawn_blocking(move || ingest::ingest(&dataset, &request))
                .await
                .map_err(|e| anyhow!("the ingest stopped: {e}"))?;
            drop(copy);
            let summary = match result {
                Ok(summary) => summary,
                Err(e) => {
                    let why = format!("{e}");
                    return Err(match landing.set_aside(entry, &why) {
                        Ok(to) => anyhow!("{why}; the file was set aside as {to}"),
                        Err(move_error) => {
                            anyhow!("{why}; setting the file aside failed too: {move_error:#}")
                        }
                    });
                }
            };
            let to = landing.mark_taken(entry)?;
            // A batch taken before answers with its first summary: nothing was added now.
            let (added, rejected) = if summary.already_ingested {
                (0, 0)
            } else {
                (summary.events_added, summary.rejected)
            };
            let note = if summary.already_ingested {
                format!(
                    "already ingested as batch {}: nothing added; moved to {to}",
                    summary.batch_id
                )
            } else {
                format!("moved to {to}")
            };
            let outcome = JobOutcome {
                rows: Some(added),
                rejects: Some(rejected),
                batch_id: Some(summary.batch_id.clone()),
                note: Some(match &summary.rejects_file {
                    Some(file) if rejected > 0 => {
                        format!("{note}; rejected rows in {file}")
                    }
                    _ => note,
                }),
                ..JobOutcome::default()
            };
            Ok::<_, anyhow::Error>((added, outcome))
        };
        state
            .run_job(JobKind::Ingest, WATCH, Some(source), work)
            .await
            .unwrap_or(0)
    }
}
