//! `assay ingest` and the rollup it maintains, through the real binary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Array, Int32Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use serde_json::Value;

use crate::support::{assay, assay_ok, copy_inputs, shared_dataset};

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).expect("write fixture");
    path.to_path_buf()
}

fn gzip(path: &Path, text: &str) -> PathBuf {
    let file = std::fs::File::create(path).expect("create");
    let mut encoder = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    encoder.write_all(text.as_bytes()).expect("gzip");
    encoder.finish().expect("gzip finish");
    path.to_path_buf()
}

/// Runs `assay ingest … --json` and returns its summary.
fn ingest(data: &Path, format: &str, sources: &[&Path], extra: &[&str]) -> Value {
    let mut args = vec![
        "ingest",
        "--json",
        "--format",
        format,
        "--data",
        data.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let sources: Vec<String> = sources.iter().map(|p| p.display().to_string()).collect();
    args.extend(sources.iter().map(String::as_str));
    let out = assay_ok(&args);
    serde_json::from_str::<Value>(&out).expect("JSON summary")["ingest"].clone()
}

/// Query result as CSV lines (header dropped).
fn rows(data: &Path, sql: &str) -> Vec<String> {
    let out = assay_ok(&[
        "sql",
        "--data",
        data.to_str().unwrap(),
        "--format",
        "csv",
        sql,
    ]);
    out.lines().skip(1).map(str::to_string).collect()
}

const CANONICAL_COLUMNS: &str = "arrow_cast(event_time, 'Int64') AS t, event_type, style_id, sku_id, \
     user_id, session_id, order_id, quantity, price, market, channel, return_reason";

fn canonical_rows(data: &Path) -> Vec<String> {
    rows(
        data,
        &format!(
            "SELECT {CANONICAL_COLUMNS} FROM events ORDER BY t, event_type, style_id, user_id"
        ),
    )
}

fn rejects(summary: &Value) -> Vec<String> {
    let path = summary["rejects_file"].as_str().expect("a rejects file");
    let text = std::fs::read_to_string(path).expect("rejects file");
    text.lines().skip(1).map(str::to_string).collect()
}

fn reasons(summary: &Value) -> Vec<(String, u64)> {
    summary["reject_reasons"]
        .as_object()
        .expect("reasons")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

#[test]
fn rees46_csv_gz_maps_row_by_row_and_rejects_bad_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ds");
    let src = gzip(
        &tmp.path().join("2019-Oct.csv.gz"),
        "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n\
         2019-10-01 00:00:04 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,72d7-s1\n\
         2019-10-01 00:00:04 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,72d7-s1\n\
         2019-10-01 00:05:00 UTC,cart,44600062,2103807459595387724,,shiseido,35.79,541312140,72d7-s1\n\
         2019-10-02 09:00:00 UTC,purchase,3900821,2053013552326770905,appliances.water_heater,aqua,33.20,554748717,9333-s2\n\
         2019-13-01 00:00:00 UTC,view,1,2,,b,1.0,5,s\n\
         2019-10-02 10:00:07 UTC,wishlist,1,2,,b,1.0,5,s\n\
         2019-10-02 10:00:07 UTC,view,,2,,b,1.0,5,s\n\
         2019-10-02 10:00:08 UTC,view,1,2,,b,\"12,5\",5,s\n",
    );
    let s = ingest(&data, "rees46", &[&src], &["--market", "US"]);
    assert_eq!(s["rows_read"], 8);
    assert_eq!(s["events_added"], 3);
    assert_eq!(s["duplicates_dropped"], 1, "the repeated line is one event");
    assert_eq!(s["rejected"], 4);
    assert_eq!(
        reasons(&s),
        [
            ("bad price", 1),
            ("bad time", 1),
            ("missing field", 1),
            ("unknown event type", 1)
        ]
        .map(|(k, n)| (k.to_string(), n))
    );
    assert_eq!(
        canonical_rows(&data),
        [
            "1569888004000000,view,44600062,,541312140,72d7-s1,,1,35.79,US,web,",
            "1569888300000000,cart,44600062,,541312140,72d7-s1,,1,35.79,US,web,",
            "1570006800000000,purchase,3900821,,554748717,9333-s2,9333-s2,1,33.2,US,web,",
        ]
    );
    let rejected = rejects(&s);
    assert_eq!(rejected.len(), 4);
    // file, line, reason, raw row (CSV-quoted where it has commas).
    for (row, (line, reason)) in rejected.iter().zip([
        (6, "bad time: `2019-13-01 00:00:00 UTC`"),
        (7, "unknown event type: `wishlist`"),
        (8, "missing field: `product_id` is empty"),
        (9, "bad price: `12,5`"),
    ]) {
        assert!(
            row.starts_with(&format!("{},{line},", src.display())),
            "{row}"
        );
        assert!(row.contains(reason), "{row}");
    }
    assert!(
        rejected[3].ends_with(r#""2019-10-02 10:00:08 UTC,view,1,2,,b,""12,5"",5,s""#),
        "{}",
        rejected[3]
    );
    // Unknown styles join the catalog with their first event as launch and the
    // category the source names.
    assert_eq!(
        rows(
            &data,
            "SELECT style_id, category, brand, arrow_cast(launch_at, 'Int64'), list_price FROM styles ORDER BY style_id"
        ),
        [
            "3900821,appliances.water_heater,aqua,1570006800000000,33.2",
            "44600062,2103807459595387724,shiseido,1569888004000000,35.79",
        ]
    );
    assert_eq!(s["new_styles"].as_array().unwrap().len(), 2);
    // Without a market the rows cannot be placed.
    let (ok, _, err) = assay(&[
        "ingest",
        "--format",
        "rees46",
        "--data",
        data.to_str().unwrap(),
        src.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("--market"), "{err}");
}

#[test]
fn retailrocket_and_hm_map_their_ids_and_times() {
    let tmp = tempfile::tempdir().unwrap();
    let rr_data = tmp.path().join("rr");
    let rr = write(
        &tmp.path().join("events.csv"),
        "timestamp,visitorid,event,itemid,transactionid\n\
         1433221332117,257597,view,355908,\n\
         1433224214164,992329,addtocart,248676,\n\
         1433221999827,111016,transaction,5206,4000\n\
         abc,1,view,2,\n\
         1433221999827,1,remove,2,\n\
         1433221999827,1,view,,\n",
    );
    let s = ingest(&rr_data, "retailrocket", &[&rr], &["--market", "RU"]);
    assert_eq!(
        (s["events_added"].as_u64(), s["rejected"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(
        canonical_rows(&rr_data),
        [
            "1433221332117000,view,355908,,257597,,,1,,RU,web,",
            "1433221999827000,purchase,5206,,111016,,4000,1,,RU,web,",
            "1433224214164000,cart,248676,,992329,,,1,,RU,web,",
        ]
    );
    assert_eq!(
        reasons(&s),
        [
            ("bad time", 1),
            ("missing field", 1),
            ("unknown event type", 1)
        ]
        .map(|(k, n)| (k.to_string(), n))
    );

    let hm_data = tmp.path().join("hm");
    let hm = write(
        &tmp.path().join("transactions_train.csv"),
        "t_dat,customer_id,article_id,price,sales_channel_id\n\
         2018-09-20,c1,0663713001,0.0508,2\n\
         2018-09-20,c1,0663713001,0.0508,2\n\
         2018-09-20,c2,541518023,0.0305,1\n\
         20-09-2018,c3,0663713001,0.05,2\n\
         2018-09-21,c3,ABC,0.05,2\n\
         2018-09-21,c3,0663713001,0.05,3\n\
         2018-09-21,c3,0663713001,x,2\n",
    );
    let s = ingest(&hm_data, "hm", &[&hm], &["--market", "SE"]);
    assert_eq!(
        s["events_added"], 3,
        "two identical lines are two units: {s}"
    );
    assert_eq!(s["rejected"], 4);
    assert_eq!(
        canonical_rows(&hm_data),
        [
            "1537401600000000,purchase,0541518,0541518023,c2,,,1,0.0305,SE,store,",
            "1537401600000000,purchase,0663713,0663713001,c1,,,1,0.0508,SE,web,",
            "1537401600000000,purchase,0663713,0663713001,c1,,,1,0.0508,SE,web,",
        ]
    );
    assert_eq!(
        reasons(&s),
        [
            ("bad channel", 1),
            ("bad id", 1),
            ("bad price", 1),
            ("bad time", 1)
        ]
        .map(|(k, n)| (k.to_string(), n))
    );
}

const EVENTS_HEADER: &str = "event_id,event_time,event_type,style_id,sku_id,size,user_id,session_id,order_id,quantity,price,market,channel,return_reason\n";

#[test]
fn canonical_csv_and_parquet_check_every_field() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ds");
    let csv = write(
        &tmp.path().join("day1.csv"),
        &format!(
            "{EVENTS_HEADER}\
             e1,2026-09-01T10:00:00Z,purchase,S1,S1-M,M,u1,s1,o1,2,20.0,US,app,\n\
             e2,2026-09-03T08:00:00Z,return,S1,S1-M,M,u1,,o1,1,20.0,US,app,quality\n\
             e3,2026-09-01T10:00:00Z,view,S1,,,u1,s1,,-1,20.0,US,app,\n\
             e4,2026-09-01T10:00:00Z,return,S1,,,u1,s1,o1,1,20.0,US,app,bored\n\
             e5,2026-09-01T10:00:00Z,view,S1,,,u1,s1,,1,20.0,ALL,app,\n\
             ,2026-09-01T10:00:00Z,view,S1,,,u1,s1,,1,20.0,US,app,\n"
        ),
    );
    let s = ingest(&data, "events-csv", &[&csv], &[]);
    assert_eq!(
        (s["events_added"].as_u64(), s["rejected"].as_u64()),
        (Some(2), Some(4))
    );
    assert_eq!(
        reasons(&s),
        [
            ("bad market", 1),
            ("bad quantity", 1),
            ("bad return reason", 1),
            ("missing field", 1)
        ]
        .map(|(k, n)| (k.to_string(), n))
    );
    assert_eq!(
        rows(
            &data,
            "SELECT event_id, CAST(event_date AS VARCHAR), quantity, return_reason FROM events ORDER BY event_id"
        ),
        ["e1,2026-09-01,2,", "e2,2026-09-03,1,quality"]
    );

    // Canonical Parquet: the same checks per row; e1 is already there.
    let parquet = tmp.path().join("batch.parquet");
    let ts = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_micros()
    };
    let text = |v: Vec<Option<&str>>| Arc::new(StringArray::from(v)) as ArrayRef;
    let batch = RecordBatch::try_from_iter(vec![
        (
            "event_id",
            text(vec![Some("e1"), Some("e6"), Some("e7"), Some("e8")]),
        ),
        (
            "event_time",
            Arc::new(
                TimestampMicrosecondArray::from(vec![
                    ts("2026-09-01T10:00:00Z"),
                    ts("2026-09-02T11:30:00.5Z"),
                    ts("2026-09-02T12:00:00Z"),
                    ts("2026-09-02T12:00:00Z"),
                ])
                .with_timezone("UTC"),
            ) as ArrayRef,
        ),
        (
            "event_type",
            text(vec![
                Some("purchase"),
                Some("view"),
                Some("click"),
                Some("cart"),
            ]),
        ),
        (
            "style_id",
            text(vec![Some("S1"), Some("S2"), Some("S2"), Some("S2")]),
        ),
        ("sku_id", text(vec![None; 4])),
        ("size", text(vec![None; 4])),
        (
            "user_id",
            text(vec![Some("u1"), Some("u2"), Some("u2"), Some("u2")]),
        ),
        ("session_id", text(vec![None; 4])),
        ("order_id", text(vec![None; 4])),
        (
            "quantity",
            Arc::new(Int32Array::from(vec![2, 1, 1, 0])) as ArrayRef,
        ),
        (
            "price",
            Arc::new(Float64Array::from(vec![Some(20.0), None, None, None])) as ArrayRef,
        ),
        (
            "market",
            text(vec![Some("US"), Some("DE"), Some("DE"), Some("DE")]),
        ),
        (
            "channel",
            text(vec![Some("app"), Some("web"), Some("web"), Some("web")]),
        ),
        ("return_reason", text(vec![None; 4])),
    ])
    .unwrap();
    let file = std::fs::File::create(&parquet).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let s = ingest(&data, "events-parquet", &[&parquet], &[]);
    assert_eq!(s["events_added"], 1);
    assert_eq!(s["duplicates_dropped"], 1, "e1 was ingested before");
    assert_eq!(
        reasons(&s),
        [("bad quantity", 1), ("unknown event type", 1)].map(|(k, n)| (k.to_string(), n))
    );
    assert_eq!(
        rows(
            &data,
            "SELECT event_id, arrow_cast(event_time, 'Int64'), market FROM events WHERE style_id = 'S2'"
        ),
        ["e6,1788348600500000,DE"]
    );
}

#[test]
fn canonical_parquet_events_come_through_ingest_unchanged() {
    // A generated dataset's own partition files are canonical and clean: every row takes
    // the column-wise path, and the events table must come out the same, column by column.
    let source = shared_dataset();
    let files: Vec<PathBuf> = crate::support::walk(&source.join("events"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ds");
    let sources: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let styles = source.join("styles.parquet");
    let s = ingest(
        &data,
        "events-parquet",
        &sources,
        &["--no-rollup", "--styles", styles.to_str().unwrap()],
    );
    let expected = rows(source, "SELECT COUNT(*) FROM events")[0]
        .parse::<u64>()
        .unwrap();
    assert_eq!(s["events_added"].as_u64(), Some(expected));
    assert_eq!(s["rejected"].as_u64(), Some(0));
    let all = "SELECT event_id, CAST(event_date AS VARCHAR) AS d, arrow_cast(event_time, 'Int64'), \
               event_type, style_id, sku_id, size, user_id, session_id, order_id, quantity, \
               price, market, channel, return_reason FROM events ORDER BY event_id";
    let (before, after) = (rows(source, all), rows(&data, all));
    assert_eq!(before.len() as u64, expected);
    assert!(
        before == after,
        "the ingested events differ from their source"
    );
}

#[test]
fn a_batch_is_idempotent_and_an_unreadable_source_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ds");
    let day1 = write(
        &tmp.path().join("a.csv"),
        &format!("{EVENTS_HEADER}e1,2026-09-01T10:00:00Z,view,S1,,,u1,,,1,,US,web,\n"),
    );
    let first = ingest(&data, "events-csv", &[&day1], &[]);
    assert_eq!(first["events_added"], 1);
    let again = ingest(&data, "events-csv", &[&day1], &[]);
    assert_eq!(again["already_ingested"], true);
    assert_eq!(again["batch_id"], first["batch_id"]);
    assert_eq!(rows(&data, "SELECT COUNT(*) FROM events"), ["1"]);

    let before = canonical_rows(&data);
    let day2 = write(
        &tmp.path().join("b.csv"),
        &format!("{EVENTS_HEADER}e2,2026-09-02T10:00:00Z,view,S1,,,u1,,,1,,US,web,\n"),
    );
    let garbage = tmp.path().join("c.csv");
    std::fs::write(&garbage, [0u8, 159, 146, 150, 255, 10, 1, 2]).unwrap();
    let truncated = tmp.path().join("d.csv.gz");
    let full = std::fs::read(gzip(&truncated, &"x".repeat(100_000))).unwrap();
    std::fs::write(&truncated, &full[..full.len() / 2]).unwrap();
    for bad in [&garbage, &truncated] {
        let (ok, _, err) = assay(&[
            "ingest",
            "--format",
            "events-csv",
            "--data",
            data.to_str().unwrap(),
            day2.to_str().unwrap(),
            bad.to_str().unwrap(),
        ]);
        assert!(!ok, "an unreadable source fails the batch");
        assert!(
            err.contains(bad.to_str().unwrap()),
            "the error names the file: {err}"
        );
        assert_eq!(canonical_rows(&data), before, "the dataset is unchanged");
    }
}

/// An 8 MB gzip that decompresses to 1.2 GB, with a quote opened on line 2 that never
/// closes: the record splitter once buffered it all (3.4 GB, then an abort).
#[test]
fn a_quote_that_never_closes_fails_the_batch_naming_its_line_in_bounded_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ds");
    let good = write(
        &tmp.path().join("a.csv"),
        &format!("{EVENTS_HEADER}e1,2026-09-01T10:00:00Z,view,S1,,,u1,,,1,,US,web,\n"),
    );
    ingest(&data, "events-csv", &[&good], &[]);
    let before = canonical_rows(&data);

    let bomb = tmp.path().join("bomb.csv.gz");
    let file = std::fs::File::create(&bomb).unwrap();
    let mut encoder = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    encoder
        .write_all(
            format!("{EVENTS_HEADER}e2,\"2026-09-02T10:00:00Z,view,S1,,,u1,,,1,,US,web,\n")
                .as_bytes(),
        )
        .unwrap();
    let filler = "e3,2026-09-02T10:00:00Z,view,S1,,,u1,,,1,,US,web,\n".repeat(20_000);
    let mut written = 0;
    while written < 1_200_000_000 {
        encoder.write_all(filler.as_bytes()).unwrap();
        written += filler.len();
    }
    encoder.finish().unwrap();

    // GNU time reports the process's peak resident memory.
    let out = std::process::Command::new("/usr/bin/time")
        .arg("-v")
        .arg(env!("CARGO_BIN_EXE_assay"))
        .args(["ingest", "--format", "events-csv", "--data"])
        .arg(&data)
        .arg(&bomb)
        .output()
        .expect("/usr/bin/time runs (Debian package time, installed by scripts/deps)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("{}: line 2:", bomb.display())),
        "the error names the file and line: {err}"
    );
    assert!(err.contains("never closes"), "{err}");
    let peak_kib: u64 = err
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .expect("time -v reports the peak")
        .parse()
        .unwrap();
    assert!(peak_kib < 1024 * 1024, "ingest peaked at {peak_kib} KiB");
    println!(
        "unclosed quote in a 1.2 GB gzip: refused at a peak of {} MiB",
        peak_kib / 1024
    );
    assert_eq!(canonical_rows(&data), before, "the dataset is unchanged");
}

/// SIGKILL at random points of an ingest: afterwards the dataset (as assay reads it)
/// holds either none or all of the batch, and running the ingest again completes it.
#[test]
fn sigkill_mid_ingest_leaves_the_dataset_before_or_after() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    copy_inputs(shared_dataset(), &base);
    let before = rows(
        &base,
        "SELECT COUNT(*), COUNT(DISTINCT event_id) FROM events",
    );
    // A batch of new events over ten days: the shared dataset's, re-identified.
    let csv = tmp.path().join("batch.csv");
    let exported = assay_ok(&[
        "sql",
        "--data",
        base.to_str().unwrap(),
        "--format",
        "csv",
        "SELECT 'k' || event_id AS event_id, event_time, event_type, style_id, sku_id, size, user_id, \
         session_id, order_id, quantity, price, market, channel, return_reason FROM events \
         WHERE event_date <= DATE '2026-09-10' ORDER BY event_time",
    ]);
    std::fs::write(&csv, exported).unwrap();

    let after_dir = tmp.path().join("after");
    copy_inputs(&base, &after_dir);
    let started = std::time::Instant::now();
    let clean = ingest(&after_dir, "events-csv", &[&csv], &[]);
    let full_run = started.elapsed();
    let after = rows(
        &after_dir,
        "SELECT COUNT(*), COUNT(DISTINCT event_id) FROM events",
    );
    assert_ne!(before, after);
    println!(
        "clean ingest: {} events in {full_run:?}",
        clean["events_added"]
    );

    let (mut saw_before, mut saw_after) = (0, 0);
    for round in 0..8u32 {
        let dir = tmp.path().join(format!("kill{round}"));
        copy_inputs(&base, &dir);
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_assay"))
            .args([
                "ingest",
                "--format",
                "events-csv",
                "--data",
                dir.to_str().unwrap(),
                csv.to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Spread the kills over the whole run, denser early where the batch is staged
        // and published (the rollup refresh that follows takes the rest), with jitter.
        let jitter = f64::from(std::process::id() % 97) / 970.0;
        let at = full_run.mul_f64((f64::from(round) / 7.0 + jitter).powi(2) * 1.05);
        std::thread::sleep(at);
        let _ = child.kill();
        let _ = child.wait();
        let now = rows(
            &dir,
            "SELECT COUNT(*), COUNT(DISTINCT event_id) FROM events",
        );
        if now == before {
            saw_before += 1;
        } else {
            assert_eq!(
                now, after,
                "round {round}: killed after {at:?}, a half batch is visible"
            );
            saw_after += 1;
        }
        let finished = ingest(&dir, "events-csv", &[&csv], &[]);
        assert_eq!(
            rows(
                &dir,
                "SELECT COUNT(*), COUNT(DISTINCT event_id) FROM events"
            ),
            after,
            "round {round}: re-running completes the batch ({finished})"
        );
        let leftovers: Vec<PathBuf> = crate::support::walk(&dir)
            .into_iter()
            .filter(|p| {
                p.to_string_lossy().contains(".ingest-") || p.to_string_lossy().contains("journal-")
            })
            .collect();
        assert!(
            leftovers.is_empty(),
            "round {round}: temporary files left: {leftovers:?}"
        );
    }
    println!("kills: {saw_before} left the dataset as before, {saw_after} as after");
    assert!(saw_before > 0, "some kill must land before the commit");
}

/// Batches in day order, then late events for old days and a batch that repeats rows:
/// the incrementally kept rollup equals a rebuild, and decisions from it equal the
/// decisions on the same events loaded at once.
#[test]
fn the_incremental_rollup_equals_a_rebuild_after_late_and_duplicate_events() {
    let tmp = tempfile::tempdir().unwrap();
    let source = shared_dataset();
    let data = tmp.path().join("ds");
    std::fs::create_dir_all(&data).unwrap();
    for f in ["styles.parquet", "stock_receipts.parquet"] {
        std::fs::copy(source.join(f), data.join(f)).unwrap();
    }
    let columns = "event_id, event_time, event_type, style_id, sku_id, size, user_id, session_id, \
                   order_id, quantity, price, market, channel, return_reason";
    let export = |name: &str, filter: &str| {
        let path = tmp.path().join(name);
        let out = assay_ok(&[
            "sql",
            "--data",
            source.to_str().unwrap(),
            "--format",
            "csv",
            &format!("SELECT {columns} FROM events WHERE {filter} ORDER BY event_time"),
        ]);
        std::fs::write(&path, out).unwrap();
        path
    };
    // Held back: every fifth event of the first days, delivered late.
    let late = "event_date <= DATE '2026-09-12' AND substr(event_id, length(event_id)) = '5'";
    let batches = [
        export(
            "b1.csv",
            &format!("event_date <= DATE '2026-09-12' AND NOT ({late})"),
        ),
        export(
            "b2.csv",
            "event_date > DATE '2026-09-12' AND event_date <= DATE '2026-09-25'",
        ),
        export("late.csv", late),
        // Repeats part of the first batch (dropped as duplicates) and adds the rest.
        export(
            "b3.csv",
            "event_date >= DATE '2026-09-10' AND NOT (event_date <= DATE '2026-09-12' AND substr(event_id, length(event_id)) = '5')",
        ),
    ];
    let mut recomputed = Vec::new();
    for batch in &batches {
        let out = assay_ok(&[
            "ingest",
            "--json",
            "--format",
            "events-csv",
            "--data",
            data.to_str().unwrap(),
            batch.to_str().unwrap(),
        ]);
        let v: Value = serde_json::from_str(&out).unwrap();
        recomputed.push((
            v["ingest"]["events_added"].clone(),
            v["rollup"]["from"].clone(),
        ));
    }
    println!("batches (events added, first recomputed day): {recomputed:?}");
    assert_eq!(
        recomputed[2].1, "2026-09-01",
        "late events recompute from their day"
    );
    assert_eq!(
        rows(&data, "SELECT COUNT(*) FROM events"),
        rows(source, "SELECT COUNT(*) FROM events"),
        "every event once, duplicates dropped"
    );
    let daily = "SELECT * FROM style_daily ORDER BY style_id, market, day";
    let incremental = rows(&data, daily);
    assert!(
        incremental.len() > 1000,
        "{} rollup rows",
        incremental.len()
    );
    assay_ok(&["rollup", "--data", data.to_str().unwrap(), "--rebuild"]);
    let rebuilt = rows(&data, daily);
    assert_eq!(incremental.len(), rebuilt.len());
    for (i, (a, b)) in incremental.iter().zip(&rebuilt).enumerate() {
        assert_eq!(a, b, "rollup row {i} differs after a rebuild");
    }

    // Decisions from this rollup equal decisions on the source dataset, at a mid-day
    // as-of (raw tail) and at the end.
    let reference = tmp.path().join("reference");
    copy_inputs(source, &reference);
    for as_of in ["2026-09-20T13:30:00Z", "2026-10-05"] {
        let decide = |dir: &Path| {
            let out = assay_ok(&[
                "decide",
                "--data",
                dir.to_str().unwrap(),
                "--as-of",
                as_of,
                "--format",
                "csv",
            ]);
            let mut lines: Vec<String> = out
                .lines()
                .map(|l| l.split(',').skip(1).collect::<Vec<_>>().join(","))
                .collect();
            lines.sort();
            lines
        };
        assert_eq!(decide(&data), decide(&reference), "decisions as of {as_of}");
    }
}
