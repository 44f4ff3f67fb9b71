//! The analysts' notebooks, executed headless (nbclient, a real Jupyter kernel) against
//! a real server on the sample data: any cell that errors fails the test.

use std::path::Path;

use serde_json::json;

use crate::server::{Server, sample_copy, token};
use crate::support::{path_str, run_python};

const EXECUTE: &str = r#"
import os, sys, nbformat
from nbclient import NotebookClient
folder = os.environ["NOTEBOOKS"]
for name in sys.argv[1:]:
    nb = nbformat.read(os.path.join(folder, name), as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": folder}}).execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{name}: {errors}"
    figures = sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    print(name, len(nb.cells), figures)
"#;

#[tokio::test]
async fn the_notebooks_run_clean_against_a_live_server() {
    let tmp = sample_copy();
    let data = tmp.path();
    let analyst = token(data, "analyst", "notebook");
    let merchandiser = token(data, "merchandiser", "mer");
    let server = Server::start(data);

    // One override, so the audit's override section has something to show.
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/v1/styles/ST000002/overrides", server.base))
        .bearer_auth(&merchandiser)
        .json(&json!({"verdict": "keep", "reason": "trend_signal", "market": "ALL"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../notebooks");
    let mut notebooks: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.ends_with(".ipynb").then_some(name)
        })
        .collect();
    notebooks.sort();
    assert!(notebooks.len() >= 2, "{notebooks:?}");
    let mut script = String::from("import sys\nsys.argv = ['run'");
    for n in &notebooks {
        script.push_str(&format!(", {n:?}"));
    }
    script.push_str("]\n");
    script.push_str(EXECUTE);
    let out = run_python(
        &script,
        &[
            ("NOTEBOOKS", path_str(&folder)),
            ("ASSAY_URL", &server.base),
            ("ASSAY_TOKEN", &analyst),
        ],
    );
    // Each notebook reports its cells and figures: every one draws at least two plots.
    for line in out.lines() {
        let figures: usize = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(figures >= 2, "{line}");
    }
    assert_eq!(out.lines().count(), notebooks.len(), "{out}");
    server.stop();
}
