//! The real client programs the analysts' tests drive: pgjdbc on the machine's Java and
//! node-postgres on its Node.js, each a probe under `tests/e2e/` that prints one JSON
//! object.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{path_str, stdout_of};

/// Runs `tests/e2e/jdbc/JdbcProbe.java` with pgjdbc (Debian's `libpostgresql-jdbc-java`)
/// against the PostgreSQL port `pg`, with `args` and `env`; returns what it printed.
pub fn jdbc_probe(
    pg: &str,
    user: &str,
    password: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Value {
    let classes = tempfile::tempdir().unwrap();
    let source = e2e_dir().join("jdbc/JdbcProbe.java");
    let javac = Command::new("javac")
        .args(["-d", path_str(classes.path()), path_str(&source)])
        .output()
        .expect("javac runs (openjdk-17-jdk-headless, installed by scripts/deps)");
    assert!(
        javac.status.success(),
        "{}",
        String::from_utf8_lossy(&javac.stderr)
    );
    let jar = "/usr/share/java/postgresql.jar";
    assert!(
        Path::new(jar).exists(),
        "{jar} (libpostgresql-jdbc-java, installed by scripts/deps)"
    );
    let mut run = Command::new("java");
    run.args([
        "-cp",
        &format!("{jar}:{}", path_str(classes.path())),
        "JdbcProbe",
    ])
    .args(args)
    .envs(env.iter().copied())
    .env("JDBC_URL", format!("jdbc:postgresql://{pg}/assay"))
    .env("PGUSER", user)
    .env("PGPASSWORD", password);
    serde_json::from_str(&stdout_of(run, "java")).unwrap()
}

/// Runs `tests/e2e/node/pg_probe.js` with node-postgres (installed by `scripts/deps`
/// outside the clone) against the PostgreSQL port `pg`, with `args` and `env`.
pub fn node_probe(
    pg: &str,
    user: &str,
    password: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Value {
    let (host, port) = pg.rsplit_once(':').unwrap();
    let modules = std::env::var("ASSAY_NODE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/assay-node"))
        .join("node_modules");
    assert!(
        modules.join("pg").exists(),
        "{} (node-postgres, installed by scripts/deps)",
        modules.display()
    );
    let mut run = Command::new("node");
    run.arg(e2e_dir().join("node/pg_probe.js"))
        .args(args)
        .envs(env.iter().copied())
        .env("NODE_PATH", &modules)
        .env("PGHOST", host)
        .env("PGPORT", port)
        .env("PGUSER", user)
        .env("PGPASSWORD", password);
    serde_json::from_str(&stdout_of(run, "node")).unwrap()
}

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/e2e")
}
