//! `assay scheduler` and `assay executor`: a Ballista cluster from the `assay` binary.
//!
//! They are Ballista's own scheduler and executor (the `ballista-scheduler` and
//! `ballista-executor` crates), started with assay's settings: the scheduler lists
//! table folders afresh for every job (see [`assay_engine::compute::runtime_env`]),
//! and both report the address they bound, so scripts and tests can use port 0.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use assay_engine::storage::s3::S3Settings;
use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::utils::default_session_builder;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service_with_listener};
use datafusion::execution::SessionStateBuilder;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};

#[derive(Debug, clap::Args)]
pub struct SchedulerArgs {
    /// Address of the scheduler's gRPC service (port 0: any free port).
    #[arg(
        long,
        default_value = "127.0.0.1:50050",
        env = "ASSAY_SCHEDULER_LISTEN",
        value_parser = super::listen::parse
    )]
    pub listen: SocketAddr,
    /// Host name executors and clients reach this scheduler by [default: the listen IP].
    #[arg(long)]
    pub external_host: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct ExecutorArgs {
    /// The scheduler, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:50050", env = "ASSAY_SCHEDULER")]
    pub scheduler: String,
    /// IP to bind the executor's Flight (shuffle) and gRPC services on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind_host: String,
    /// Host name the scheduler and other executors reach this one by [default: bind-host].
    #[arg(long)]
    pub external_host: Option<String>,
    /// Port of the Arrow Flight service other executors fetch shuffle data from.
    #[arg(long, default_value_t = 50051)]
    pub flight_port: u16,
    /// Port of the executor's gRPC service the scheduler pushes tasks to.
    #[arg(long, default_value_t = 50052)]
    pub grpc_port: u16,
    /// Tasks run at once [default: the machine's cores].
    #[arg(long)]
    pub vcores: Option<usize>,
    /// Folder for shuffle and spill files [default: assay-executor-PID in the temporary
    /// folder].
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Memory all tasks of this executor may use before spilling, MiB [default:
    /// Ballista's share of the host's memory].
    #[arg(long)]
    pub memory_mib: Option<u64>,
}

pub async fn run_scheduler(args: SchedulerArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let bound = listener.local_addr()?;
    let config = SchedulerConfig::default()
        .with_hostname(args.external_host.unwrap_or_else(|| bound.ip().to_string()))
        .with_port(bound.port())
        .with_scheduler_policy(TaskSchedulingPolicy::PushStaged)
        .with_override_session_builder(Arc::new(|config| {
            let state = default_session_builder(config)?;
            let session_id = state.session_id().to_string();
            // A cluster's processes read S3 with the `AWS_*` settings of their environment.
            let runtime = assay_engine::compute::runtime_env(&S3Settings::default())
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
            Ok(SessionStateBuilder::new_from_existing(state)
                .with_session_id(session_id)
                .with_runtime_env(runtime)
                .build())
        }));
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .context("starting the scheduler's cluster state")?;
    let scheduler =
        create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, Arc::new(config))
            .await
            .context("starting the scheduler")?;
    // Tests and scripts read this line to find the bound port.
    println!("assay scheduler listening on {bound}");
    start_grpc_service_with_listener(listener, scheduler)
        .await
        .context("serving the scheduler")?;
    Ok(())
}

pub async fn run_executor(args: ExecutorArgs) -> anyhow::Result<()> {
    let (host, port) = args
        .scheduler
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
        .with_context(|| format!("--scheduler `{}`: expected HOST:PORT", args.scheduler))?;
    // Tasks read `s3://` tables through assay's object stores, and spill here.
    let work_dir = match args.work_dir {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!("assay-executor-{}", std::process::id())),
    };
    std::fs::create_dir_all(&work_dir)
        .with_context(|| format!("creating work dir {}", work_dir.display()))?;
    let spill = work_dir.display().to_string();
    let mut config = ExecutorProcessConfig {
        bind_host: args.bind_host.clone(),
        external_host: Some(args.external_host.unwrap_or(args.bind_host)),
        port: args.flight_port,
        grpc_port: args.grpc_port,
        scheduler_host: host,
        scheduler_port: port,
        // Wait for a scheduler that starts after this executor.
        scheduler_connect_timeout_seconds: 30,
        task_scheduling_policy: TaskSchedulingPolicy::PushStaged,
        work_dir: Some(spill.clone()),
        override_runtime_producer: Some(Arc::new(move |_| {
            let runtime = assay_engine::compute::runtime_builder(&S3Settings::default())
                .with_temp_file_path(spill.clone())
                .build()?;
            Ok(Arc::new(runtime))
        })),
        memory_pool_size: args.memory_mib.map(|m| m * 1024 * 1024),
        // Ballista's default registry leaves out DataFusion's nested functions, and the
        // funnel cuts stock spells into days with `generate_series`: decode tasks with
        // every function a default session knows, as the scheduler planned them.
        override_function_registry: Some(Arc::new(BallistaFunctionRegistry::from(
            &SessionStateBuilder::new().with_default_features().build(),
        ))),
        print_thread_info: false,
        ..ExecutorProcessConfig::default()
    };
    if let Some(vcores) = args.vcores {
        config.vcores = vcores.max(1);
    }
    println!(
        "assay executor {} serving on {}:{} (flight) and :{} (grpc), scheduler {}",
        config.executor_id, config.bind_host, config.port, config.grpc_port, args.scheduler
    );
    start_executor_process(Arc::new(config))
        .await
        .context("running the executor")?;
    Ok(())
}
