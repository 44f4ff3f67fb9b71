//! Running the real binary and making datasets for it.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

/// Runs `assay` with `args`; returns (exit success, stdout, stderr).
pub fn assay(args: &[&str]) -> (bool, String, String) {
    assay_env(args, &[])
}

/// Runs `assay` with `args` and extra environment variables.
pub fn assay_env(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out: Output = std::process::Command::new(env!("CARGO_BIN_EXE_assay"))
        .args(args)
        .envs(env.iter().copied())
        .env_remove("ASSAY_DATA")
        .env_remove("ASSAY_POLICY")
        .env_remove("ASSAY_ENGINE")
        .output()
        .expect("the assay binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !stderr.contains("panicked"),
        "assay {args:?} panicked:\n{stderr}"
    );
    (out.status.success(), stdout, stderr)
}

/// Like [`assay`], but the command must succeed; returns stdout.
pub fn assay_ok(args: &[&str]) -> String {
    let (ok, stdout, stderr) = assay(args);
    assert!(ok, "assay {args:?} failed:\n{stderr}\n{stdout}");
    stdout
}

/// A generated dataset shared by the tests that only read it (copy it before changing).
/// 300 styles over 35 days in 2 markets.
pub fn shared_dataset() -> &'static Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DIR.get_or_init(|| {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("gen");
        generate(&dir, 300, 35, 11);
        (tmp, dir)
    })
    .1
}

pub fn generate(dir: &Path, styles: usize, days: u32, seed: u64) {
    let dir = dir.to_str().expect("utf-8 path");
    let (styles, days, seed) = (styles.to_string(), days.to_string(), seed.to_string());
    assay_ok(&[
        "generate",
        "--out",
        dir,
        "--styles",
        &styles,
        "--days",
        &days,
        "--seed",
        &seed,
        "--markets",
        "2",
        "--events",
        "700000",
    ]);
}

/// Copies a dataset's input files (not its decision runs).
pub fn copy_inputs(from: &Path, to: &Path) {
    for entry in walk(from) {
        let rel = entry.strip_prefix(from).expect("inside");
        if rel.starts_with("decisions") {
            continue;
        }
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().expect("has parent")).expect("mkdir");
        std::fs::copy(&entry, &dest).expect("copy");
    }
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("readable dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The Python of the venv `scripts/deps` fills (psycopg, ADBC, Jupyter).
pub fn venv_python() -> PathBuf {
    let venv = std::env::var_os("ASSAY_VENV").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/assay-venv"),
        PathBuf::from,
    );
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run ./scripts/deps (./scripts/test does) first",
        python.display()
    );
    python
}

/// Runs a Python script with the venv's Python; panics with its stderr if it fails.
pub fn run_python(script: &str, env: &[(&str, &str)]) -> String {
    let mut python = std::process::Command::new(venv_python());
    python.arg("-c").arg(script).envs(env.iter().copied());
    stdout_of(python, "python")
}

/// What a client program (`what`: python, java, node) printed; it must succeed.
pub fn stdout_of(mut command: std::process::Command, what: &str) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what} runs (installed by scripts/deps): {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
