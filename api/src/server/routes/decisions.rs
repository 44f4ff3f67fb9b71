//! `GET /v1/decisions`: the effective keep / drop / test list of the latest run.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use crate::server::dto::{ApiVerdict, DecisionPage, DecisionView};
use crate::server::error::{ApiError, Problem};
use crate::server::state::AppState;
use crate::spreadsheet::defuse;

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// `?name=` (empty) means the parameter is not set.
fn empty_as_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    Json,
    Csv,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DecisionQuery {
    /// Only rows with this effective verdict.
    pub verdict: Option<ApiVerdict>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub category: Option<String>,
    /// A market code, or `ALL` for pooled rows. Default: every row.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub market: Option<String>,
    /// Launched on or after this day (UTC): a date, or RFC 3339 meaning its UTC date.
    #[serde(default, deserialize_with = "crate::time_input::optional_day")]
    pub launched_from: Option<NaiveDate>,
    /// Launched on or before this day (UTC): a date, or RFC 3339 meaning its UTC date.
    #[serde(default, deserialize_with = "crate::time_input::optional_day")]
    pub launched_to: Option<NaiveDate>,
    /// Only rows with P(keep) at least this.
    #[param(minimum = 0.0, maximum = 1.0)]
    pub min_p_keep: Option<f64>,
    /// A field, `-` in front for descending: style_id, market, category, launch_at,
    /// days_live, sell_through, p_keep, p_drop, units_sold, reorder_units,
    /// projected_st_p50. Default `style_id`.
    #[param(
        pattern = "^-?(style_id|market|category|launch_at|days_live|sell_through|p_keep|p_drop|units_sold|reorder_units|projected_st_p50)$"
    )]
    pub sort: Option<String>,
    /// Rows per page, 1–1000 (default 100). CSV returns every matching row.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub cursor: Option<String>,
    /// `csv` for CSV (same as `Accept: text/csv`).
    #[param(inline)]
    pub format: Option<OutputFormat>,
}

#[utoipa::path(
    get,
    path = "/v1/decisions",
    tag = "decisions",
    params(DecisionQuery),
    responses(
        (status = 200, description = "A page of effective decisions, or all of them as CSV", content(
            (DecisionPage = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No run loaded yet", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub async fn get_decisions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<DecisionQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    let snapshot = state.snapshot()?;
    let now = Utc::now();
    let live = state.overrides.live(now);
    let sort = SortKey::parse(q.sort.as_deref().unwrap_or("style_id"))?;
    if let Some(p) = q.min_p_keep
        && !(0.0..=1.0).contains(&p)
    {
        return Err(ApiError::bad_request(format!(
            "min_p_keep must be between 0 and 1, got {p}"
        )));
    }
    let mut rows: Vec<DecisionView> = snapshot
        .rows
        .iter()
        .filter(|d| q.category.as_deref().is_none_or(|c| d.category == c))
        .filter(|d| q.market.as_deref().is_none_or(|m| d.market == m))
        .filter(|d| q.min_p_keep.is_none_or(|p| d.p_keep >= p))
        .map(|d| snapshot.view(d, &live, &state.policy, now))
        .filter(|v| q.verdict.is_none_or(|want| v.verdict == want))
        .filter(|v| {
            let day = v.launch_at.map(|t| t.date_naive());
            q.launched_from
                .is_none_or(|from| day.is_some_and(|d| d >= from))
                && q.launched_to.is_none_or(|to| day.is_some_and(|d| d <= to))
        })
        .collect();
    rows.sort_by(|a, b| {
        sort.compare(a, b)
            .then_with(|| (&a.style_id, &a.market).cmp(&(&b.style_id, &b.market)))
    });

    if wants_csv(&headers, q.format) {
        return Ok(csv_response(rows));
    }
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_LIMIT}, got {limit}"
        )));
    }
    let offset = match q.cursor.as_deref() {
        None => 0,
        Some(c) => Cursor::decode(c, &snapshot.run.run_id)?,
    };
    let total = rows.len();
    let items: Vec<DecisionView> = rows.into_iter().skip(offset).take(limit).collect();
    let next = offset + items.len();
    let page = DecisionPage {
        run_id: snapshot.run.run_id.clone(),
        as_of: snapshot.run.as_of,
        policy_version: snapshot.run.policy_version.clone(),
        total,
        items,
        next_cursor: (next < total).then(|| Cursor::encode(&snapshot.run.run_id, next)),
    };
    Ok(Json(page).into_response())
}

fn wants_csv(headers: &HeaderMap, format: Option<OutputFormat>) -> bool {
    match format {
        Some(f) => f == OutputFormat::Csv,
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/csv")),
    }
}

/// A page position, tied to the run it pages through: a new run restarts the list.
struct Cursor;

impl Cursor {
    fn encode(run_id: &str, offset: usize) -> String {
        format!("{run_id}.{offset}")
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn decode(cursor: &str, run_id: &str) -> Result<usize, ApiError> {
        let bad =
            || ApiError::bad_request("cursor is not one this API returned; start again without it");
        if !cursor.len().is_multiple_of(2) || cursor.len() > 400 {
            return Err(bad());
        }
        // Pairs of bytes, not of chars: a multi-byte char in a forged cursor must not split.
        let bytes: Vec<u8> = cursor
            .as_bytes()
            .chunks(2)
            .map(|pair| {
                let hex = std::str::from_utf8(pair).ok()?;
                u8::from_str_radix(hex, 16).ok()
            })
            .collect::<Option<_>>()
            .ok_or_else(bad)?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let (run, offset) = text.rsplit_once('.').ok_or_else(bad)?;
        if run != run_id {
            return Err(ApiError::conflict(format!(
                "a new decision run ({run_id}) replaced the one this cursor pages through ({run}); start again without a cursor"
            )));
        }
        offset.parse().map_err(|_| bad())
    }
}

struct SortKey {
    field: SortField,
    descending: bool,
}

/// The fields a list can be sorted by. The `sort` parameter's pattern in
/// [`DecisionQuery`] lists the same names (a test holds them together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortField {
    StyleId,
    Market,
    Category,
    LaunchAt,
    DaysLive,
    SellThrough,
    PKeep,
    PDrop,
    UnitsSold,
    ReorderUnits,
    ProjectedStP50,
}

impl SortField {
    const ALL: [Self; 11] = [
        Self::StyleId,
        Self::Market,
        Self::Category,
        Self::LaunchAt,
        Self::DaysLive,
        Self::SellThrough,
        Self::PKeep,
        Self::PDrop,
        Self::UnitsSold,
        Self::ReorderUnits,
        Self::ProjectedStP50,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::StyleId => "style_id",
            Self::Market => "market",
            Self::Category => "category",
            Self::LaunchAt => "launch_at",
            Self::DaysLive => "days_live",
            Self::SellThrough => "sell_through",
            Self::PKeep => "p_keep",
            Self::PDrop => "p_drop",
            Self::UnitsSold => "units_sold",
            Self::ReorderUnits => "reorder_units",
            Self::ProjectedStP50 => "projected_st_p50",
        }
    }
}

impl SortKey {
    fn parse(s: &str) -> Result<Self, ApiError> {
        let (descending, name) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let field = SortField::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = SortField::ALL.iter().map(|f| f.name()).collect();
                ApiError::bad_request(format!(
                    "cannot sort by `{name}`: expected one of {}",
                    names.join(", ")
                ))
            })?;
        Ok(Self { field, descending })
    }

    fn compare(&self, a: &DecisionView, b: &DecisionView) -> Ordering {
        let f = |x: f64, y: f64| x.total_cmp(&y);
        let order = match self.field {
            SortField::StyleId => a.style_id.cmp(&b.style_id),
            SortField::Market => a.market.cmp(&b.market),
            SortField::Category => a.category.cmp(&b.category),
            SortField::LaunchAt => a.launch_at.cmp(&b.launch_at),
            SortField::DaysLive => f(a.days_live, b.days_live),
            SortField::SellThrough => f(a.sell_through, b.sell_through),
            SortField::PKeep => f(a.p_keep, b.p_keep),
            SortField::PDrop => f(a.p_drop, b.p_drop),
            SortField::UnitsSold => a.units_sold.cmp(&b.units_sold),
            SortField::ReorderUnits => a.reorder_units.cmp(&b.reorder_units),
            SortField::ProjectedStP50 => f(a.projected_st_p50, b.projected_st_p50),
        };
        if self.descending {
            order.reverse()
        } else {
            order
        }
    }
}

/// One row of the CSV export: its fields are the columns, in order. Text a
/// spreadsheet would run as a formula is defused.
#[derive(Serialize, Default)]
struct CsvRow<'a> {
    style_id: Cow<'a, str>,
    name: Cow<'a, str>,
    category: Cow<'a, str>,
    market: Cow<'a, str>,
    launch_at: Option<String>,
    days_live: f64,
    exposure_days: f64,
    sold_out: bool,
    views: i64,
    carts: i64,
    purchases: i64,
    units_sold: i64,
    units_returned: i64,
    units_received: i64,
    on_hand: i64,
    sell_through: f64,
    p_keep: f64,
    p_drop: f64,
    keep_rate: f64,
    drop_rate: f64,
    projected_st_p10: f64,
    projected_st_p50: f64,
    projected_st_p90: f64,
    reorder_units: i64,
    model_reorder_units: i64,
    model_verdict: &'static str,
    verdict: &'static str,
    confidence: Option<f64>,
    override_id: Option<&'a str>,
    override_reason: Option<&'a str>,
    override_user: Option<Cow<'a, str>>,
    override_comment: Option<Cow<'a, str>>,
    reasons: Cow<'a, str>,
}

impl<'a> CsvRow<'a> {
    fn new(v: &'a DecisionView) -> Self {
        let o = v.live_override.as_ref();
        Self {
            style_id: defuse(&v.style_id),
            name: defuse(v.name.as_deref().unwrap_or("")),
            category: defuse(&v.category),
            market: defuse(&v.market),
            launch_at: v.launch_at.map(|t| t.to_rfc3339()),
            days_live: v.days_live,
            exposure_days: v.exposure_days,
            sold_out: v.sold_out,
            views: v.views,
            carts: v.carts,
            purchases: v.purchases,
            units_sold: v.units_sold,
            units_returned: v.units_returned,
            units_received: v.units_received,
            on_hand: v.on_hand,
            sell_through: v.sell_through,
            p_keep: v.p_keep,
            p_drop: v.p_drop,
            keep_rate: v.keep_rate,
            drop_rate: v.drop_rate,
            projected_st_p10: v.projected_st_p10,
            projected_st_p50: v.projected_st_p50,
            projected_st_p90: v.projected_st_p90,
            reorder_units: v.reorder_units,
            model_reorder_units: v.model_reorder_units,
            model_verdict: v.model_verdict.as_str(),
            verdict: v.verdict.as_str(),
            confidence: v.confidence,
            override_id: o.map(|o| o.override_id.as_str()),
            override_reason: o.map(|o| o.reason.as_str()),
            override_user: o.map(|o| defuse(&o.user)),
            override_comment: o.and_then(|o| o.comment.as_deref()).map(defuse),
            reasons: Cow::Owned(v.reasons.join(" ")),
        }
    }
}

/// `rows` as CSV, with the header line when `header`.
fn csv_chunk(rows: &[DecisionView], header: bool) -> Result<Bytes, csv::Error> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(header)
        .from_writer(Vec::new());
    if rows.is_empty() && header {
        // The csv writer takes the header from the first record: with none, write
        // the header alone from an empty row's field names.
        let mut names = csv::Writer::from_writer(Vec::new());
        names.serialize(CsvRow::default())?;
        let text = names
            .into_inner()
            .map_err(|e| csv::Error::from(e.into_error()))?;
        let end = text
            .iter()
            .position(|b| *b == b'\n')
            .map_or(text.len(), |i| i + 1);
        return Ok(Bytes::copy_from_slice(&text[..end]));
    }
    for v in rows {
        w.serialize(CsvRow::new(v))?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))?;
    Ok(Bytes::from(bytes))
}

/// Streams the rows as CSV in chunks, so a large export does not sit in one buffer.
fn csv_response(rows: Vec<DecisionView>) -> Response {
    let mut chunks: Vec<Vec<DecisionView>> = Vec::new();
    let mut rest = rows;
    while !rest.is_empty() {
        let tail = rest.split_off(rest.len().min(500));
        chunks.push(rest);
        rest = tail;
    }
    if chunks.is_empty() {
        chunks.push(Vec::new());
    }
    // Rows already in memory: a failure here is a bug, sent as a broken stream.
    let body = chunks.into_iter().enumerate().map(|(i, chunk)| {
        csv_chunk(&chunk, i == 0).map_err(|e| std::io::Error::other(e.to_string()))
    });
    let mut response = Body::from_stream(futures::stream::iter(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    response.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"assay-decisions.csv\""),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_are_tied_to_their_run() {
        let c = Cursor::encode("run-1", 200);
        assert_eq!(Cursor::decode(&c, "run-1").unwrap(), 200);
        assert_eq!(
            Cursor::decode(&c, "run-2").unwrap_err().status,
            axum::http::StatusCode::CONFLICT
        );
        assert_eq!(
            Cursor::decode("zz", "run-1").unwrap_err().status,
            axum::http::StatusCode::BAD_REQUEST
        );
    }

    /// The documented pattern of `sort` names exactly the fields the code sorts by.
    #[test]
    fn the_sort_parameter_documents_every_sort_field() {
        let api = serde_json::to_value(crate::server::openapi()).unwrap();
        let sort = api["paths"]["/v1/decisions"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "sort")
            .unwrap()
            .clone();
        let names: Vec<&str> = SortField::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(
            sort["schema"]["pattern"],
            format!("^-?({})$", names.join("|"))
        );
        let doc = sort["description"].as_str().unwrap().replace('\n', " ");
        for name in names {
            assert!(doc.contains(name), "{name} in {doc}");
            assert_eq!(SortKey::parse(name).unwrap().field.name(), name);
        }
    }

    #[test]
    fn an_empty_export_still_has_its_header() {
        let text = csv_chunk(&[], true).unwrap();
        let header = std::str::from_utf8(&text).unwrap();
        assert!(
            header.starts_with("style_id,name,category,market,launch_at,"),
            "{header}"
        );
        assert!(header.ends_with(",override_comment,reasons\n"), "{header}");
        assert!(csv_chunk(&[], false).unwrap().is_empty());
    }
}
