//! Where the engine's heavy queries run: this process, or Apache DataFusion Ballista.
//!
//! The funnel and rollup queries are plain SQL over Parquet listing tables, so the same
//! text runs on any of these. Only the [`SessionContext`] differs, and one function
//! builds all three.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::error::{EngineError, Result};
use crate::storage::s3::{Registry, S3Settings};

/// The query engine chosen with `--engine`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum QueryEngine {
    /// DataFusion in this process.
    #[default]
    Local,
    /// A Ballista scheduler and executor started inside this process (for trying it and
    /// for tests: the plans go through Ballista's serialisation, stages and shuffle).
    BallistaStandalone,
    /// A running Ballista scheduler, `host:port`.
    Ballista { scheduler: String },
}

impl QueryEngine {
    /// Whether queries leave DataFusion-in-process for Ballista.
    pub fn is_ballista(&self) -> bool {
        !matches!(self, Self::Local)
    }
}

impl FromStr for QueryEngine {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "local" => Ok(Self::Local),
            "ballista-standalone" => Ok(Self::BallistaStandalone),
            _ => {
                let scheduler = s
                    .strip_prefix("ballista://")
                    .or_else(|| s.strip_prefix("df://"))
                    .filter(|rest| valid_host_port(rest))
                    .ok_or_else(|| EngineError::BadEngine {
                        given: s.to_string(),
                    })?;
                Ok(Self::Ballista {
                    scheduler: scheduler.to_string(),
                })
            }
        }
    }
}

fn valid_host_port(s: &str) -> bool {
    s.rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

impl fmt::Display for QueryEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local => f.write_str("local"),
            Self::BallistaStandalone => f.write_str("ballista-standalone"),
            Self::Ballista { scheduler } => write!(f, "ballista://{scheduler}"),
        }
    }
}

/// The session settings every engine shares: the catalog names user SQL sees.
fn base_config(config: SessionConfig) -> SessionConfig {
    config
        .with_information_schema(true)
        .with_default_catalog_and_schema("assay", "public")
}

/// The runtime every session of assay's gets (Ballista schedulers' too, see
/// `assay scheduler`). Files come and go under the tables' folders: ingest adds event
/// days, a rollup refresh writes a week at a time and reads it back for the next. So
/// folders are listed at every query, not cached for ever (DataFusion's default). Only
/// `deregister_table` clears that cache, and only in its own process: a Ballista
/// scheduler kept the first week's listing and carried the wrong stock into the next.
/// Tables on `s3://` need no registration: the first scan of a bucket builds its
/// client from the `AWS_*` settings and `s3` (see [`crate::storage::s3`]).
///
/// # Errors
/// The runtime cannot be built.
pub fn runtime_env(s3: &S3Settings) -> Result<Arc<RuntimeEnv>> {
    Ok(runtime_builder(s3).build_arc()?)
}

/// [`runtime_env`]'s settings, for a runtime that adds its own (an executor's spill
/// folder).
pub fn runtime_builder(s3: &S3Settings) -> RuntimeEnvBuilder {
    let caches = CacheManagerConfig::default().with_list_files_cache_limit(0);
    RuntimeEnvBuilder::new()
        .with_cache_manager(caches)
        .with_object_store_registry(Arc::new(Registry::new(s3.clone())))
}

/// Builds the session for `engine`: plain DataFusion, or a Ballista client whose
/// queries are planned into stages and run by the scheduler's executors. Its `s3://`
/// scans use `s3`.
///
/// # Errors
/// A Ballista engine in a build without the `ballista` feature, or a scheduler that
/// cannot be reached.
pub async fn session_context(engine: &QueryEngine, s3: &S3Settings) -> Result<SessionContext> {
    match engine {
        QueryEngine::Local => {
            let ctx = SessionContext::new_with_config_rt(
                base_config(SessionConfig::new()),
                runtime_env(s3)?,
            );
            // Faster, same answers (see the module). Not on Ballista, whose scheduler
            // plans again with its own rules.
            ctx.add_optimizer_rule(Arc::new(crate::day_intervals::DayIntervalsAsDurations));
            Ok(ctx)
        }
        #[cfg(feature = "ballista")]
        QueryEngine::BallistaStandalone | QueryEngine::Ballista { .. } => {
            ballista_context(engine, s3).await
        }
        #[cfg(not(feature = "ballista"))]
        QueryEngine::BallistaStandalone | QueryEngine::Ballista { .. } => {
            Err(EngineError::BallistaNotBuilt {
                engine: engine.to_string(),
            })
        }
    }
}

#[cfg(feature = "ballista")]
async fn ballista_context(engine: &QueryEngine, s3: &S3Settings) -> Result<SessionContext> {
    use ballista::prelude::{SessionConfigExt, SessionContextExt};
    use datafusion::execution::SessionStateBuilder;

    // Ballista 55's adaptive planner re-plans stages while they run; on assay's funnel
    // its task metrics then stop matching the stage's and the job never finishes
    // ("task metrics array size 12 does not equal … 11"). The static planner is exact.
    let mut config = SessionConfig::new_with_ballista().with_ballista_adaptive_query_planner(false);
    if *engine == QueryEngine::BallistaStandalone {
        // One shuffle partition per core of the one executor, not Ballista's 16 (sized
        // for a cluster): every partition of every stage is a task, and a task costs
        // tens of milliseconds of scheduling however small it is.
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        config = config
            .with_target_partitions(cores)
            .with_ballista_standalone_parallelism(cores);
    }
    let state = SessionStateBuilder::new()
        .with_config(base_config(config))
        .with_runtime_env(runtime_env(s3)?)
        .with_default_features()
        .build();
    let started = match engine {
        QueryEngine::Ballista { scheduler } => {
            SessionContext::remote_with_state(&format!("df://{scheduler}"), state).await
        }
        _ => SessionContext::standalone_with_state(state).await,
    };
    started.map_err(|e| EngineError::Ballista {
        engine: engine.to_string(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_engine_and_says_what_it_expected() {
        assert_eq!("local".parse::<QueryEngine>().unwrap(), QueryEngine::Local);
        assert_eq!(
            "ballista-standalone".parse::<QueryEngine>().unwrap(),
            QueryEngine::BallistaStandalone
        );
        let remote: QueryEngine = "ballista://10.0.0.5:50050".parse().unwrap();
        assert_eq!(
            remote,
            QueryEngine::Ballista {
                scheduler: "10.0.0.5:50050".into()
            }
        );
        assert_eq!(remote.to_string(), "ballista://10.0.0.5:50050");
        for bad in [
            "",
            "ballista",
            "ballista://host",
            "ballista://:1",
            "spark://h:1",
        ] {
            let e = bad.parse::<QueryEngine>().unwrap_err().to_string();
            assert!(e.contains("ballista://HOST:PORT"), "{bad}: {e}");
        }
    }
}
