//! Reorder approvals on the real `assay serve`: a rule approves the surest keeps, a
//! merchandiser approves and rejects, a viewer cannot, the export equals the approved
//! list, and the next run nets what was approved as an open order.

use serde_json::{Value, json};

use crate::server::{Server, get_json, sample_copy, token};

async fn post(client: &reqwest::Client, url: &str, token: &str, body: &Value) -> (u16, Value) {
    let r = client
        .post(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn items(list: &Value) -> Vec<Value> {
    list["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn reorders_are_approved_rejected_exported_and_netted() {
    let tmp = sample_copy();
    let data = tmp.path();
    let (admin, mia, vic) = (
        token(data, "admin", "ops"),
        token(data, "merchandiser", "mia"),
        token(data, "viewer", "vic"),
    );
    let server = Server::start_with(
        data,
        &[
            "--auto-approve-min-p-keep",
            "0.995",
            "--auto-approve-max-units",
            "400",
        ],
    );
    let base = server.base.clone();
    let client = reqwest::Client::new();

    let all = items(&get_json(&client, &format!("{base}/v1/reorders"), &mia).await);
    let auto: Vec<&Value> = all.iter().filter(|r| r["auto_rule"].is_string()).collect();
    let proposed: Vec<&Value> = all.iter().filter(|r| r["status"] == "proposed").collect();
    println!(
        "reorders at start: {} auto-approved, {} proposed",
        auto.len(),
        proposed.len()
    );
    assert!(proposed.len() >= 2, "{all:#?}");
    for r in &auto {
        assert_eq!(r["status"], "approved");
        assert_eq!(r["decided_by"], "auto-approve");
        assert!(r["units"].as_i64().unwrap() <= 400);
        let style = get_json(
            &client,
            &format!("{base}/v1/styles/{}", r["style_id"].as_str().unwrap()),
            &mia,
        )
        .await;
        let row = style["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["market"] == r["market"])
            .unwrap()
            .clone();
        assert!(row["p_keep"].as_f64().unwrap() >= 0.995, "{row:#}");
    }
    for r in &proposed {
        let p_keep = r["p_keep"].as_f64().unwrap();
        assert!(
            p_keep < 0.995 || r["units"].as_i64().unwrap() > 400,
            "the rule would have approved {r:#}"
        );
    }

    let decide = |r: &Value, decision: &str, extra: Value| {
        let mut body = json!({
            "run_id": r["run_id"], "style_id": r["style_id"], "market": r["market"],
            "decision": decision,
        });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let url = format!("{base}/v1/reorders");
    let (first, second) = (proposed[0].clone(), proposed[1].clone());
    assert_eq!(
        post(&client, &url, &vic, &decide(&first, "approve", json!({})))
            .await
            .0,
        403
    );
    assert_eq!(
        post(&client, &url, &mia, &decide(&second, "reject", json!({})))
            .await
            .0,
        422,
        "a rejection says why"
    );
    let proposal = first["units"].as_i64().unwrap();
    let approved_units = (proposal / 2).max(1);
    let (status, approved) = post(
        &client,
        &url,
        &mia,
        &decide(
            &first,
            "approve",
            json!({"units": approved_units, "comment": "half now"}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{approved}");
    assert_eq!(approved["units"], approved_units);
    assert_eq!(approved["proposed_units"], proposal);
    assert_eq!(
        post(&client, &url, &mia, &decide(&first, "approve", json!({})))
            .await
            .0,
        409,
        "decided once"
    );
    let (status, rejected) = post(
        &client,
        &url,
        &mia,
        &decide(
            &second,
            "reject",
            json!({"comment": "supplier cannot deliver"}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{rejected}");
    assert_eq!(rejected["units"], 0);

    // The export is exactly the approved list, which then reads as exported.
    let before = items(&get_json(&client, &format!("{url}?status=approved"), &mia).await);
    assert_eq!(before.len(), auto.len() + 1);
    let (status, export) = post(&client, &format!("{url}/export"), &admin, &json!(null)).await;
    assert_eq!(status, 201, "{export}");
    assert_eq!(
        post(&client, &format!("{url}/export"), &mia, &json!(null))
            .await
            .0,
        403
    );
    let csv_file = export["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .find(|f| f.ends_with(".csv"))
        .unwrap();
    let mut exported: Vec<(String, i64)> = csv::Reader::from_path(csv_file)
        .unwrap()
        .deserialize::<std::collections::HashMap<String, String>>()
        .map(|r| {
            let r = r.unwrap();
            (r["reorder_id"].clone(), r["units"].parse().unwrap())
        })
        .collect();
    exported.sort();
    let mut listed: Vec<(String, i64)> = before
        .iter()
        .map(|r| {
            (
                r["reorder_id"].as_str().unwrap().to_string(),
                r["units"].as_i64().unwrap(),
            )
        })
        .collect();
    listed.sort();
    assert_eq!(exported, listed);
    assert!(items(&get_json(&client, &format!("{url}?status=approved"), &mia).await).is_empty());
    assert_eq!(
        items(&get_json(&client, &format!("{url}?status=exported"), &mia).await).len(),
        listed.len()
    );

    // The next run counts the approved units as on order: it proposes less for that
    // style and market than it did before.
    let (status, run) = post(&client, &format!("{base}/v1/runs"), &admin, &json!({})).await;
    assert_eq!(status, 201, "{run}");
    let style = get_json(
        &client,
        &format!("{base}/v1/styles/{}", first["style_id"].as_str().unwrap()),
        &mia,
    )
    .await;
    let row = style["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["market"] == first["market"])
        .unwrap()
        .clone();
    let now = row["reorder_units"].as_i64().unwrap();
    println!("netting: proposed {proposal}, approved {approved_units}, next run proposes {now}");
    assert!(now < proposal, "{row:#}");
    server.stop();
}
