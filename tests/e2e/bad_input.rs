//! Bad input gets a clear message naming what is wrong, and never a panic.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema};
use assay_engine::parquet_io::write_parquet;
use assay_engine::source::schema;

use crate::support::{assay, copy_inputs, path_str, shared_dataset};

fn dataset_copy() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_inputs(shared_dataset(), tmp.path());
    tmp
}

fn decide_fails_with(data: &Path, needles: &[&str]) {
    let (ok, stdout, stderr) = assay(&["decide", "--data", path_str(data)]);
    assert!(!ok, "decide succeeded on bad input:\n{stdout}");
    for needle in needles {
        assert!(stderr.contains(needle), "error lacks `{needle}`:\n{stderr}");
    }
}

#[test]
fn a_corrupt_parquet_file_is_named() {
    let tmp = dataset_copy();
    let file = tmp
        .path()
        .join("events/event_date=2026-09-10/part-0.parquet");
    std::fs::write(&file, b"PAR1 this is not parquet").unwrap();
    decide_fails_with(
        tmp.path(),
        &[
            "event_date=2026-09-10/part-0.parquet",
            "not a readable Parquet file",
        ],
    );
}

#[test]
fn a_missing_column_names_file_column_and_expectation() {
    let tmp = dataset_copy();
    let schema = Arc::new(Schema::new(vec![
        Field::new("style_id", DataType::Utf8, false),
        Field::new("market", DataType::Utf8, false),
        Field::new("received_at", schema::timestamp_type(), false),
        Field::new("units", DataType::Utf8, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["ST000001"])),
        Arc::new(StringArray::from(vec!["US"])),
        Arc::new(TimestampMicrosecondArray::from(vec![0]).with_timezone("UTC")),
        Arc::new(StringArray::from(vec!["ten"])),
    ];
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns).unwrap();
    write_parquet(&tmp.path().join("stock_receipts.parquet"), schema, &[batch]).unwrap();
    decide_fails_with(
        tmp.path(),
        &[
            "stock_receipts.parquet",
            "column `units` is Utf8, expected an integer (Int32)",
            "column `batch` is missing (expected an integer (Int32))",
        ],
    );
}

#[test]
fn unknown_styles_and_negative_quantities_are_reported_not_fatal() {
    let tmp = dataset_copy();
    let t = chrono::DateTime::parse_from_rfc3339("2026-09-10T12:00:00Z")
        .unwrap()
        .timestamp_micros();
    let rows = [("bad-1", "NOPE-42", 1), ("bad-2", "ST000001", -3)];
    let n = rows.len();
    let text = |v: Vec<Option<&str>>| -> ArrayRef { Arc::new(StringArray::from(v)) };
    let columns: Vec<ArrayRef> = vec![
        text(rows.iter().map(|r| Some(r.0)).collect()),
        Arc::new(TimestampMicrosecondArray::from(vec![t; n]).with_timezone("UTC")),
        text(vec![Some("purchase"); n]),
        text(rows.iter().map(|r| Some(r.1)).collect()),
        text(vec![None; n]),
        text(vec![None; n]),
        text(vec![Some("u1"); n]),
        text(vec![None; n]),
        text(vec![Some("o1"); n]),
        Arc::new(Int32Array::from(
            rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        )),
        Arc::new(arrow::array::Float64Array::from(vec![Some(10.0); n])),
        text(vec![Some("US"); n]),
        text(vec![Some("web"); n]),
        text(vec![None; n]),
    ];
    let batch = RecordBatch::try_new(schema::events_file_schema(), columns).unwrap();
    let file = tmp
        .path()
        .join("events/event_date=2026-09-10/part-bad.parquet");
    write_parquet(&file, schema::events_file_schema(), &[batch]).unwrap();
    let (ok, stdout, stderr) = assay(&["decide", "--data", path_str(tmp.path())]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("warning: 1 events reference style ids missing from styles.parquet")
            && stdout.contains("NOPE-42")
            && stdout.contains("event_date=2026-09-10"),
        "{stdout}"
    );
    assert!(
        // Counted by the daily rollup: the example is the style and its day.
        stdout.contains("warning: 1 events have a quantity below 1")
            && stdout.contains("style `ST000001` in events/event_date=2026-09-10"),
        "{stdout}"
    );
}

#[test]
fn an_empty_dataset_and_a_missing_directory_say_so() {
    let tmp = dataset_copy();
    std::fs::remove_dir_all(tmp.path().join("events")).unwrap();
    decide_fails_with(tmp.path(), &["no events", "events"]);
    decide_fails_with(&tmp.path().join("nowhere"), &["nowhere", "does not exist"]);
}

#[test]
fn a_badly_named_partition_is_named() {
    let tmp = dataset_copy();
    // A folder of events under a name DataFusion cannot read as a day. (An empty one
    // is no folder at all on an object store, and hides nothing.)
    let folder = tmp.path().join("events/date=yesterday");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(
        tmp.path()
            .join("events/event_date=2026-09-10/part-0.parquet"),
        folder.join("part-0.parquet"),
    )
    .unwrap();
    decide_fails_with(tmp.path(), &["date=yesterday", "event_date=YYYY-MM-DD"]);
}

#[test]
fn a_bad_policy_names_the_setting() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = tmp.path().join("policy.toml");
    std::fs::write(&policy, "[defaults]\nkeep_probability = 2\n").unwrap();
    let (ok, _, stderr) = assay(&[
        "decide",
        "--data",
        path_str(shared_dataset()),
        "--policy",
        path_str(&policy),
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("defaults.keep_probability = 2") && stderr.contains("policy.toml"),
        "{stderr}"
    );
    // A mistyped category would never apply: refused, with the catalog's categories.
    std::fs::write(&policy, "[categories.outerwaer]\nmin_days_live = 9\n").unwrap();
    let common = [
        "--data",
        path_str(shared_dataset()),
        "--policy",
        path_str(&policy),
    ];
    for command in [&["decide"][..], &["serve", "--listen", "127.0.0.1:0"]] {
        let (ok, _, stderr) = assay(&[command, &common[..]].concat());
        assert!(!ok, "{command:?} accepted a mistyped category");
        assert!(
            stderr.contains("[categories.outerwaer]") && stderr.contains("outerwear"),
            "{command:?}: {stderr}"
        );
    }
}

#[test]
fn sql_refuses_writes_files_and_settings() {
    let data = path_str(shared_dataset());
    for sql in [
        "COPY (SELECT 1) TO '/tmp/assay-should-not-exist.csv'",
        "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
        "SET datafusion.execution.batch_size = 1",
        "INSERT INTO styles SELECT * FROM styles",
        "DROP TABLE events",
    ] {
        let (ok, _, stderr) = assay(&["sql", "--data", data, sql]);
        assert!(!ok, "allowed: {sql}");
        assert!(stderr.contains("error:"), "{sql}: {stderr}");
    }
    assert!(!Path::new("/tmp/assay-should-not-exist.csv").exists());
    let (ok, _, stderr) = assay(&["sql", "--data", data, "SELECT * FROM '/etc/passwd'"]);
    assert!(!ok && stderr.contains("not found"), "{stderr}");
}
