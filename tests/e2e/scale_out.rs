//! The same decisions from DataFusion in this process and from Apache DataFusion
//! Ballista: an in-process scheduler and executor, and a scheduler with two executors
//! as separate `assay` processes on loopback.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{assay_ok, copy_inputs, path_str};

/// One CSV answer, keyed by (style_id, market).
type Rows = BTreeMap<(String, String), BTreeMap<String, String>>;

fn parse_csv(text: &str) -> Rows {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("a header")
        .iter()
        .map(str::to_string)
        .collect();
    let mut rows = Rows::new();
    for record in reader.records() {
        let record = record.expect("a CSV record");
        let row: BTreeMap<String, String> = header
            .iter()
            .cloned()
            .zip(record.iter().map(str::to_string))
            .collect();
        let key = (row["style_id"].clone(), row["market"].clone());
        assert!(
            rows.insert(key, row).is_none(),
            "one row per style × market"
        );
    }
    rows
}

/// Every column equal, numbers to 1e-12 relative; `ignore` columns (a run's id) aside.
fn assert_same(what: &str, local: &Rows, other: &Rows, ignore: &[&str]) {
    assert!(!local.is_empty(), "{what}: no rows");
    assert_eq!(
        local.keys().collect::<Vec<_>>(),
        other.keys().collect::<Vec<_>>(),
        "{what}: the same style × market rows"
    );
    let mut compared = 0;
    for (key, row) in local {
        for (column, a) in row {
            if ignore.contains(&column.as_str()) {
                continue;
            }
            let b = &other[key][column];
            compared += 1;
            if a == b {
                continue;
            }
            let (x, y) = match (a.parse::<f64>(), b.parse::<f64>()) {
                (Ok(x), Ok(y)) => (x, y),
                _ => panic!("{what}: {key:?} {column}: {a} vs {b}"),
            };
            let scale = x.abs().max(y.abs()).max(f64::MIN_POSITIVE);
            assert!(
                (x - y).abs() / scale <= 1e-12,
                "{what}: {key:?} {column}: {a} vs {b}"
            );
        }
    }
    assert!(
        compared > local.len() * 10,
        "{what}: compared {compared} values"
    );
}

/// A decision run's every row, on `engine`, over a fresh copy of `data`.
fn decisions(data: &Path, engine: &str) -> Rows {
    let copy = tempfile::tempdir().unwrap();
    copy_inputs(data, copy.path());
    let csv = assay_ok(&[
        "--engine",
        engine,
        "decide",
        "--data",
        path_str(copy.path()),
        "--format",
        "csv",
    ]);
    parse_csv(&csv)
}

fn verdicts(rows: &Rows) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for row in rows.values() {
        *counts.entry(row["verdict"].clone()).or_default() += 1;
    }
    counts
}

#[test]
fn standalone_ballista_decides_exactly_as_local_on_the_sample_and_a_million_events() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/sample");
    let generated = tempfile::tempdir().unwrap();
    assay_ok(&[
        "generate",
        "--out",
        path_str(generated.path()),
        "--styles",
        "400",
        "--days",
        "30",
        "--markets",
        "2",
        "--seed",
        "8",
        "--events",
        "1000000",
    ]);
    for (name, data) in [
        ("sample", sample.as_path()),
        ("generated", generated.path()),
    ] {
        let local = decisions(data, "local");
        let ballista = decisions(data, "ballista-standalone");
        assert_same(name, &local, &ballista, &["run_id"]);
        let counts = verdicts(&local);
        assert!(
            counts.len() >= 2,
            "{name}: a run with more than one verdict: {counts:?}"
        );
        println!(
            "{name}: {} rows equal on local and ballista-standalone; verdicts {counts:?}",
            local.len()
        );
    }
}

/// A child process killed when the test ends, however it ends.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `assay ARGS` logging at info level: stdout piped, stderr piped or to `log`.
fn spawn(args: &[&str], log: Option<&Path>) -> Process {
    let stderr = log.map_or_else(Stdio::piped, |path| {
        Stdio::from(std::fs::File::create(path).expect("log file"))
    });
    Process(
        Command::new(env!("CARGO_BIN_EXE_assay"))
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("assay starts"),
    )
}

/// Reads `stream` until a line contains `needle`; returns that line. Later output is
/// drained so the child never blocks on a full pipe.
fn wait_for_line(stream: impl std::io::Read + Send + 'static, needle: &'static str) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if line.contains(needle)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(line);
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("no line with `{needle}` within 60 s"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_scheduler_and_two_executor_processes_compute_what_local_computes() {
    let work = tempfile::tempdir().unwrap();
    let scheduler_log = work.path().join("scheduler.log");
    let mut scheduler = spawn(
        &["scheduler", "--listen", "127.0.0.1:0"],
        Some(&scheduler_log),
    );
    let line = wait_for_line(
        scheduler.0.stdout.take().unwrap(),
        "assay scheduler listening on ",
    );
    let address = line.rsplit(' ').next().unwrap().to_string();
    let mut executors = Vec::new();
    for i in 0..2 {
        let dir = work.path().join(format!("executor-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let (flight, grpc) = (free_port().to_string(), free_port().to_string());
        let mut executor = spawn(
            &[
                "executor",
                "--scheduler",
                &address,
                "--flight-port",
                &flight,
                "--grpc-port",
                &grpc,
                "--vcores",
                "1",
                "--work-dir",
                path_str(&dir),
            ],
            None,
        );
        wait_for_line(
            executor.0.stderr.take().unwrap(),
            "Executor registration succeed",
        );
        executors.push((executor, dir));
    }

    let engine = format!("ballista://{address}");
    let data = tempfile::tempdir().unwrap();
    copy_inputs(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/sample"),
        data.path(),
    );
    // The funnel view over raw events, as an analyst would query it.
    let funnel = |engine: &str| {
        crate::support::assay(&[
            "--engine",
            engine,
            "sql",
            "--data",
            path_str(data.path()),
            "--format",
            "csv",
            "SELECT * FROM style_funnel ORDER BY style_id, market",
        ])
    };
    let started = Instant::now();
    let (ok, on_cluster, stderr) = funnel(&engine);
    assert!(
        ok,
        "the funnel on the cluster failed:\n{stderr}\nscheduler log:\n{}",
        std::fs::read_to_string(&scheduler_log).unwrap_or_default()
    );
    let seconds = started.elapsed().as_secs_f64();
    let (ok, local, stderr) = funnel("local");
    assert!(ok, "{stderr}");
    assert_same("funnel", &parse_csv(&local), &parse_csv(&on_cluster), &[]);

    // A whole decision run: rollup and funnel on the cluster.
    let local = decisions(data.path(), "local");
    let cluster = decisions(data.path(), &engine);
    assert_same("decisions", &local, &cluster, &["run_id"]);

    // Both executors took tasks: each wrote shuffle files under a job's folder.
    for (_, dir) in &executors {
        let jobs = std::fs::read_dir(dir).unwrap().count();
        assert!(jobs > 0, "{} ran no job", dir.display());
    }
    println!(
        "funnel on 1 scheduler + 2 executors: {seconds:.1} s, {} rows equal to local",
        local.len()
    );
}
