use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use assay_engine::QueryEngine;
use assay_engine::ingest::Format;
use assay_engine::sandbox::SandboxLimits;
use assay_engine::storage::Storage;
use assay_engine::storage::s3::S3Settings;

use crate::daily::schedule::DecideAt;
use crate::daily::{DailyConfig, WatchConfig};
use crate::server::state::{AutoApprove, ReorderSettings};

use crate::server::{Application, Limits, ServeConfig, shutdown_signal};
use crate::tls::TlsSettings;

/// Settings win in this order: flag, `ASSAY_*` environment variable, config file, default.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Dataset: a folder or s3://BUCKET/PREFIX [default: the bundled data/sample].
    #[arg(long, env = "ASSAY_DATA")]
    pub data: Option<String>,
    /// Address to listen on, IP:PORT or HOST:PORT [default: 127.0.0.1:8080].
    #[arg(long, env = "ASSAY_LISTEN", value_parser = super::listen::parse)]
    pub listen: Option<SocketAddr>,
    /// Also serve SQL over the PostgreSQL wire protocol here (e.g. 127.0.0.1:5433)
    /// [default: off].
    #[arg(long, env = "ASSAY_PG_LISTEN", value_parser = super::listen::parse)]
    pub pg_listen: Option<SocketAddr>,
    /// Also serve Arrow Flight SQL here (e.g. 127.0.0.1:50051) [default: off].
    #[arg(long, env = "ASSAY_FLIGHT_LISTEN", value_parser = super::listen::parse)]
    pub flight_listen: Option<SocketAddr>,
    /// TOML file with any of: data, engine, listen, pg_listen, flight_listen, policy, tokens,
    /// request_timeout_secs, max_body_bytes, max_connections, header_timeout_secs, sql_timeout_secs, sql_memory_mib, sql_max_rows,
    /// sql_max_concurrent, sql_max_concurrent_per_token, sql_idle_secs, watch, watch_format, watch_market,
    /// watch_interval_secs, decide_at, tz, decide_after_ingest, webhook_retry_hours,
    /// auto_approve_min_p_keep, auto_approve_max_units, export_to, tls_cert, tls_key, tls_required,
    /// and an [s3] table (endpoint, region, access_key_id, …).
    #[arg(long, env = "ASSAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Decision policy file (TOML) [default: the built-in policy].
    #[arg(long, env = "ASSAY_POLICY")]
    pub policy: Option<PathBuf>,
    /// API token file [default: DATA/.assay/tokens.json; for s3:// data,
    /// ~/.config/assay/tokens/BUCKET/PREFIX/tokens.json].
    #[arg(long, env = "ASSAY_TOKENS")]
    pub tokens: Option<PathBuf>,
    /// Requests taking longer are stopped with 408 [default: 30].
    #[arg(long, env = "ASSAY_REQUEST_TIMEOUT_SECS")]
    pub request_timeout_secs: Option<u64>,
    /// Larger request bodies are refused with 413 [default: 65536].
    #[arg(long, env = "ASSAY_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// An HTTP request's headers must arrive within this, or the connection is closed;
    /// also how long an idle keep-alive connection is kept [default: 30].
    #[arg(long, env = "ASSAY_HEADER_TIMEOUT_SECS")]
    pub header_timeout_secs: Option<u64>,
    /// Connections each protocol (HTTP, pgwire, Flight SQL) holds open at once; more are
    /// turned away (503, FATAL 53300) [default: 256].
    #[arg(long, env = "ASSAY_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// An analyst query running longer is stopped [default: 60].
    #[arg(long, env = "ASSAY_SQL_TIMEOUT_SECS")]
    pub sql_timeout_secs: Option<u64>,
    /// Memory one analyst query may use before it is stopped, MiB [default: 512].
    #[arg(long, env = "ASSAY_SQL_MEMORY_MIB")]
    pub sql_memory_mib: Option<usize>,
    /// Rows one SQL answer carries at most [default: 100000].
    #[arg(long, env = "ASSAY_SQL_MAX_ROWS")]
    pub sql_max_rows: Option<usize>,
    /// Analyst queries running at once; more get 429 [default: 4].
    #[arg(long, env = "ASSAY_SQL_MAX_CONCURRENT")]
    pub sql_max_concurrent: Option<usize>,
    /// Analyst queries one token runs at once, within --sql-max-concurrent; more get 429
    /// [default: 2].
    #[arg(long, env = "ASSAY_SQL_MAX_CONCURRENT_PER_TOKEN")]
    pub sql_max_concurrent_per_token: Option<usize>,
    /// A query whose client takes no rows for this long is stopped, freeing its slot
    /// [default: 10].
    #[arg(long, env = "ASSAY_SQL_IDLE_SECS")]
    pub sql_idle_secs: Option<u64>,
    /// Take in new files dropped in this folder or s3://BUCKET/PREFIX, one batch each,
    /// as `assay ingest` does; taken files move to `processed/`, failed ones to
    /// `failed/` [default: off].
    #[arg(long, env = "ASSAY_WATCH")]
    pub watch: Option<String>,
    /// Format of the watched files.
    #[arg(long, env = "ASSAY_WATCH_FORMAT", value_enum)]
    pub watch_format: Option<Format>,
    /// The market of watched files whose format carries none.
    #[arg(long, env = "ASSAY_WATCH_MARKET")]
    pub watch_market: Option<String>,
    /// Seconds between looks at the watched files and the schedule; a file is taken
    /// once two looks find it unchanged [default: 5].
    #[arg(long, env = "ASSAY_WATCH_INTERVAL_SECS")]
    pub watch_interval_secs: Option<u64>,
    /// Compute and publish a decision run every day at this time, HH:MM in --tz
    /// [default: off].
    #[arg(long, env = "ASSAY_DECIDE_AT")]
    pub decide_at: Option<String>,
    /// Time zone of --decide-at, an IANA name [default: UTC].
    #[arg(long, env = "ASSAY_TZ")]
    pub tz: Option<String>,
    /// Compute and publish a decision run after watched files added events.
    #[arg(long, env = "ASSAY_DECIDE_AFTER_INGEST")]
    pub decide_after_ingest: bool,
    /// A webhook event not delivered this many hours after it was made is given up
    /// [default: 24].
    #[arg(long, env = "ASSAY_WEBHOOK_RETRY_HOURS")]
    pub webhook_retry_hours: Option<f64>,
    /// Approve a run's reorders without a person when P(keep) is at least this (with
    /// --auto-approve-max-units) [default: off].
    #[arg(long, env = "ASSAY_AUTO_APPROVE_MIN_P_KEEP")]
    pub auto_approve_min_p_keep: Option<f64>,
    /// ...and the units are at most this.
    #[arg(long, env = "ASSAY_AUTO_APPROVE_MAX_UNITS")]
    pub auto_approve_max_units: Option<i64>,
    /// Where `POST /v1/reorders/export` writes, a folder or s3://BUCKET/PREFIX
    /// [default: DATA/exports].
    #[arg(long, env = "ASSAY_EXPORT_TO")]
    pub export_to: Option<String>,
    /// TLS certificate chain (PEM) for the pgwire and Flight SQL ports, with --tls-key;
    /// Flight SQL then speaks only TLS [default: no TLS].
    #[arg(long, env = "ASSAY_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "ASSAY_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Refuse pgwire clients that do not ask for TLS.
    #[arg(long, env = "ASSAY_TLS_REQUIRED")]
    pub tls_required: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    data: Option<String>,
    #[serde(default, deserialize_with = "super::listen::deserialize_optional")]
    listen: Option<SocketAddr>,
    #[serde(default, deserialize_with = "super::listen::deserialize_optional")]
    pg_listen: Option<SocketAddr>,
    #[serde(default, deserialize_with = "super::listen::deserialize_optional")]
    flight_listen: Option<SocketAddr>,
    policy: Option<PathBuf>,
    tokens: Option<PathBuf>,
    request_timeout_secs: Option<u64>,
    max_body_bytes: Option<usize>,
    max_connections: Option<usize>,
    header_timeout_secs: Option<u64>,
    sql_timeout_secs: Option<u64>,
    sql_memory_mib: Option<usize>,
    sql_max_rows: Option<usize>,
    sql_max_concurrent: Option<usize>,
    sql_max_concurrent_per_token: Option<usize>,
    sql_idle_secs: Option<u64>,
    watch: Option<String>,
    watch_format: Option<Format>,
    watch_market: Option<String>,
    watch_interval_secs: Option<u64>,
    decide_at: Option<String>,
    tz: Option<String>,
    decide_after_ingest: Option<bool>,
    webhook_retry_hours: Option<f64>,
    auto_approve_min_p_keep: Option<f64>,
    auto_approve_max_units: Option<i64>,
    export_to: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_required: Option<bool>,
    engine: Option<String>,
    /// S3 settings by `object_store`'s names, over the `AWS_*` environment.
    s3: Option<std::collections::BTreeMap<String, String>>,
}

fn read_config(path: &Path) -> anyhow::Result<ConfigFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {}", path.display()))
}

/// Where a dataset's API tokens live unless configured otherwise: beside a local
/// dataset; for one on object storage, in this machine's config folder (the file holds
/// only salted hashes, but it is the server's to guard, not the bucket's readers').
pub fn default_tokens(data: &str) -> PathBuf {
    match data.split_once("://") {
        Some((scheme, rest)) => {
            let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
            home.join(".config/assay/tokens")
                .join(scheme)
                .join(rest.trim_matches('/'))
                .join("tokens.json")
        }
        None => Path::new(data).join(".assay").join("tokens.json"),
    }
}

/// `engine` is the global `--engine` flag (or `ASSAY_ENGINE`), which wins over the file.
pub fn resolve(args: ServeArgs, engine: Option<QueryEngine>) -> anyhow::Result<ServeConfig> {
    let file = match &args.config {
        Some(p) => read_config(p)?,
        None => ConfigFile::default(),
    };
    let engine = match (engine, &file.engine) {
        (Some(engine), _) => engine,
        (None, Some(text)) => text.parse().with_context(|| {
            format!(
                "config file {}",
                args.config.as_deref().unwrap_or(Path::new("")).display()
            )
        })?,
        (None, None) => QueryEngine::Local,
    };
    let s3 = match &file.s3 {
        Some(pairs) => S3Settings::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .with_context(|| {
                format!(
                    "config file {}, [s3]",
                    args.config.as_deref().unwrap_or(Path::new("")).display()
                )
            })?,
        None => S3Settings::default(),
    };
    let tls = tls_settings(&args, &file)?;
    let daily = daily_config(&args, &file).with_context(|| match &args.config {
        Some(path) => format!(
            "the daily loop's settings (flags, environment, {})",
            path.display()
        ),
        None => "the daily loop's settings".to_string(),
    })?;
    let auto_approve = match (
        args.auto_approve_min_p_keep
            .or(file.auto_approve_min_p_keep),
        args.auto_approve_max_units.or(file.auto_approve_max_units),
    ) {
        (Some(min_p_keep), Some(max_units)) if (0.0..=1.0).contains(&min_p_keep) => {
            Some(AutoApprove {
                min_p_keep,
                max_units,
            })
        }
        (None, None) => None,
        (Some(p), Some(_)) => anyhow::bail!("--auto-approve-min-p-keep {p}: expected 0 to 1"),
        _ => anyhow::bail!(
            "--auto-approve-min-p-keep and --auto-approve-max-units go together: the rule needs both"
        ),
    };
    let reorders = ReorderSettings {
        auto_approve,
        export_to: match args.export_to.clone().or(file.export_to.clone()) {
            Some(location) => Some(
                Storage::parse(&location, &s3)
                    .with_context(|| format!("the reorder export's place {location}"))?,
            ),
            None => None,
        },
    };
    let data = super::data_location(args.data.or(file.data))?;
    let policy = super::decide::load_policy(args.policy.or(file.policy).as_ref())?;
    let tokens = args
        .tokens
        .or(file.tokens)
        .unwrap_or_else(|| default_tokens(&data));
    let defaults = Limits::default();
    let retry_defaults = crate::webhooks::RetryPolicy::default();
    let sql_defaults = SandboxLimits::default();
    let sql = SandboxLimits {
        timeout: args
            .sql_timeout_secs
            .or(file.sql_timeout_secs)
            .map_or(sql_defaults.timeout, Duration::from_secs),
        memory_bytes: args
            .sql_memory_mib
            .or(file.sql_memory_mib)
            .map_or(sql_defaults.memory_bytes, |m| m * 1024 * 1024),
        max_rows: args
            .sql_max_rows
            .or(file.sql_max_rows)
            .unwrap_or(sql_defaults.max_rows),
        max_concurrent: args
            .sql_max_concurrent
            .or(file.sql_max_concurrent)
            .unwrap_or(sql_defaults.max_concurrent)
            .max(1),
        max_concurrent_per_caller: args
            .sql_max_concurrent_per_token
            .or(file.sql_max_concurrent_per_token)
            .unwrap_or(sql_defaults.max_concurrent_per_caller),
        idle_client: args
            .sql_idle_secs
            .or(file.sql_idle_secs)
            .map_or(sql_defaults.idle_client, Duration::from_secs),
        ..sql_defaults
    };
    Ok(ServeConfig {
        listen: args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
        pg_listen: args.pg_listen.or(file.pg_listen),
        flight_listen: args.flight_listen.or(file.flight_listen),
        policy,
        tokens,
        limits: Limits {
            request_timeout: args
                .request_timeout_secs
                .or(file.request_timeout_secs)
                .map_or(defaults.request_timeout, Duration::from_secs),
            max_body_bytes: args
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(defaults.max_body_bytes),
            max_connections: args
                .max_connections
                .or(file.max_connections)
                .unwrap_or(defaults.max_connections),
            header_timeout: args
                .header_timeout_secs
                .or(file.header_timeout_secs)
                .map_or(defaults.header_timeout, Duration::from_secs),
        },
        sql,
        data,
        engine,
        daily,
        reorders,
        s3,
        tls,
        webhook_retry: crate::webhooks::RetryPolicy {
            give_up_after: args
                .webhook_retry_hours
                .or(file.webhook_retry_hours)
                .map_or(retry_defaults.give_up_after, |h| {
                    Duration::from_secs_f64(h * 3600.0)
                }),
            ..retry_defaults
        },
    })
}

/// The pair of files, from flags or the config file; one without the other, or
/// `tls_required` without them, is an error that says so.
fn tls_settings(args: &ServeArgs, file: &ConfigFile) -> anyhow::Result<Option<TlsSettings>> {
    let cert = args.tls_cert.clone().or(file.tls_cert.clone());
    let key = args.tls_key.clone().or(file.tls_key.clone());
    let required = args.tls_required || file.tls_required == Some(true);
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(TlsSettings {
            cert,
            key,
            required,
        })),
        (None, None) if required => {
            anyhow::bail!(
                "--tls-required needs --tls-cert and --tls-key: there is no TLS to require"
            )
        }
        (None, None) => Ok(None),
        (Some(_), None) => {
            anyhow::bail!("--tls-cert needs --tls-key (the certificate's private key)")
        }
        (None, Some(_)) => {
            anyhow::bail!("--tls-key needs --tls-cert (the certificate it belongs to)")
        }
    }
}

fn daily_config(args: &ServeArgs, file: &ConfigFile) -> anyhow::Result<DailyConfig> {
    let format = args.watch_format.or(file.watch_format);
    let watch = match (args.watch.clone().or(file.watch.clone()), format) {
        (Some(location), Some(format)) => Some(WatchConfig {
            location,
            format,
            market: args.watch_market.clone().or(file.watch_market.clone()),
        }),
        (Some(_), None) => anyhow::bail!("--watch needs --watch-format (the files' format)"),
        (None, _) => None,
    };
    let tz = args.tz.clone().or(file.tz.clone());
    let decide_at = match args.decide_at.clone().or(file.decide_at.clone()) {
        Some(time) => Some(
            DecideAt::parse(&time, tz.as_deref().unwrap_or("UTC")).map_err(anyhow::Error::msg)?,
        ),
        None if tz.is_some() => anyhow::bail!("--tz goes with --decide-at"),
        None => None,
    };
    let decide_after_ingest = args.decide_after_ingest || file.decide_after_ingest == Some(true);
    if decide_after_ingest && watch.is_none() {
        anyhow::bail!("--decide-after-ingest needs --watch: nothing else ingests in the server");
    }
    Ok(DailyConfig {
        watch,
        decide_at,
        decide_after_ingest,
        interval: Duration::from_secs(
            args.watch_interval_secs
                .or(file.watch_interval_secs)
                .unwrap_or(5)
                .max(1),
        ),
    })
}

pub async fn run(args: ServeArgs, engine: Option<QueryEngine>) -> anyhow::Result<()> {
    let config = resolve(args, engine)?;
    let flight_scheme = if config.tls.is_some() {
        "grpc+tls"
    } else {
        "grpc"
    };
    let app = Application::build(config).await?;
    let addr = app.local_addr()?;
    if let Some(pg) = app.pg_addr() {
        println!("assay pgwire listening on {pg}");
        tracing::info!(%pg, "pgwire listening");
    }
    if let Some(flight) = app.flight_addr() {
        println!("assay flight listening on {flight_scheme}://{flight}");
        tracing::info!(%flight, "Flight SQL listening");
    }
    // Tests and scripts read this line to find the bound port; it comes last.
    println!("assay listening on http://{addr}");
    tracing::info!(%addr, "listening");
    app.run(shutdown_signal()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(data: Option<&str>, listen: Option<&str>, config: Option<PathBuf>) -> ServeArgs {
        ServeArgs {
            data: data.map(String::from),
            listen: listen.map(|l| l.parse().unwrap()),
            pg_listen: None,
            flight_listen: None,
            config,
            policy: None,
            tokens: None,
            request_timeout_secs: None,
            max_body_bytes: None,
            max_connections: None,
            header_timeout_secs: None,
            sql_timeout_secs: None,
            sql_memory_mib: None,
            sql_max_rows: None,
            sql_max_concurrent: None,
            sql_max_concurrent_per_token: None,
            sql_idle_secs: None,
            watch: None,
            watch_format: None,
            watch_market: None,
            watch_interval_secs: None,
            decide_at: None,
            tz: None,
            decide_after_ingest: false,
            webhook_retry_hours: None,
            auto_approve_min_p_keep: None,
            auto_approve_max_units: None,
            export_to: None,
            tls_cert: None,
            tls_key: None,
            tls_required: false,
        }
    }

    #[test]
    fn flags_win_over_the_config_file_which_wins_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("assay.toml");
        std::fs::write(
            &file,
            "data = \"/srv/data\"\nlisten = \"127.0.0.1:9000\"\nrequest_timeout_secs = 5\n\
             engine = \"ballista://sched:50050\"\n",
        )
        .unwrap();
        let from_file = resolve(args(None, None, Some(file.clone())), None).unwrap();
        assert_eq!(from_file.engine.to_string(), "ballista://sched:50050");
        assert_eq!(from_file.data, "/srv/data");
        assert_eq!(from_file.listen.port(), 9000);
        assert_eq!(from_file.limits.request_timeout, Duration::from_secs(5));
        assert_eq!(from_file.limits.max_body_bytes, 64 * 1024, "default");
        assert_eq!(
            from_file.tokens,
            PathBuf::from("/srv/data/.assay/tokens.json")
        );
        let flags = resolve(
            args(Some("/other"), Some("127.0.0.1:7000"), Some(file)),
            Some(QueryEngine::Local),
        )
        .unwrap();
        assert_eq!(flags.data, "/other");
        assert_eq!(flags.engine, QueryEngine::Local);
        assert_eq!(flags.listen.port(), 7000);
    }

    #[test]
    fn tls_files_come_in_pairs_and_required_needs_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("assay.toml");
        std::fs::write(
            &file,
            "tls_cert = \"/etc/assay/cert.pem\"\ntls_key = \"/etc/assay/key.pem\"\ntls_required = true\n",
        )
        .unwrap();
        let tls = resolve(args(None, None, Some(file)), None)
            .unwrap()
            .tls
            .unwrap();
        assert_eq!(tls.cert, PathBuf::from("/etc/assay/cert.pem"));
        assert!(tls.required);
        assert!(resolve(args(None, None, None), None).unwrap().tls.is_none());
        let mut alone = args(None, None, None);
        alone.tls_cert = Some("/etc/assay/cert.pem".into());
        let err = format!("{:#}", resolve(alone, None).unwrap_err());
        assert!(err.contains("--tls-cert needs --tls-key"), "{err}");
        let mut nothing_to_require = args(None, None, None);
        nothing_to_require.tls_required = true;
        let err = format!("{:#}", resolve(nothing_to_require, None).unwrap_err());
        assert!(err.contains("--tls-required needs"), "{err}");
    }

    #[test]
    fn the_daily_loop_settings_come_from_flags_or_the_file_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("assay.toml");
        std::fs::write(
            &file,
            "watch = \"/srv/landing\"\nwatch_format = \"events-csv\"\ndecide_at = \"06:30\"\n\
             tz = \"Europe/Berlin\"\ndecide_after_ingest = true\n",
        )
        .unwrap();
        let daily = resolve(args(None, None, Some(file.clone())), None)
            .unwrap()
            .daily;
        let watch = daily.watch.unwrap();
        assert_eq!(watch.location, "/srv/landing");
        assert_eq!(watch.format, Format::EventsCsv);
        assert!(daily.decide_after_ingest);
        assert_eq!(daily.decide_at.unwrap().tz, chrono_tz::Europe::Berlin);
        assert_eq!(daily.interval, Duration::from_secs(5));

        let mut no_format = args(None, None, None);
        no_format.watch = Some("/srv/landing".into());
        let err = format!("{:#}", resolve(no_format, None).unwrap_err());
        assert!(err.contains("--watch-format"), "{err}");
        let mut alone = args(None, None, None);
        alone.decide_after_ingest = true;
        let err = format!("{:#}", resolve(alone, None).unwrap_err());
        assert!(err.contains("needs --watch"), "{err}");
        std::fs::write(&file, "decide_at = \"6 am\"\n").unwrap();
        let err = format!(
            "{:#}",
            resolve(args(None, None, Some(file)), None).unwrap_err()
        );
        assert!(err.contains("assay.toml") && err.contains("HH:MM"), "{err}");
    }

    #[test]
    fn a_bad_config_file_names_itself_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("assay.toml");
        std::fs::write(&file, "listn = \"127.0.0.1:1\"\n").unwrap();
        let err = format!(
            "{:#}",
            resolve(args(None, None, Some(file.clone())), None).unwrap_err()
        );
        assert!(err.contains("assay.toml") && err.contains("listn"), "{err}");
        std::fs::write(&file, "engine = \"spark://h:1\"\n").unwrap();
        let err = format!(
            "{:#}",
            resolve(args(None, None, Some(file)), None).unwrap_err()
        );
        assert!(
            err.contains("assay.toml") && err.contains("ballista://HOST:PORT"),
            "{err}"
        );
    }
}
