//! The JSON the API speaks: stable, documented types, separate from the engine's so the
//! engine can change without breaking buying systems.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use assay_engine::decision::{Decision, Reason, Verdict};
use assay_engine::store::approvals::Reorder;
use assay_engine::store::jobs::Job;
use assay_engine::store::overrides::{Override, OverrideReason};
use assay_engine::store::webhooks::{Delivery, DeliveryState, EventType, Subscription};
use assay_engine::{DailyRow, RunSummary};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApiVerdict {
    Keep,
    Drop,
    Test,
}

impl ApiVerdict {
    pub fn as_str(self) -> &'static str {
        Verdict::from(self).as_str()
    }
}

impl From<Verdict> for ApiVerdict {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Keep => ApiVerdict::Keep,
            Verdict::Drop => ApiVerdict::Drop,
            Verdict::Test => ApiVerdict::Test,
        }
    }
}

impl From<ApiVerdict> for Verdict {
    fn from(v: ApiVerdict) -> Self {
        match v {
            ApiVerdict::Keep => Verdict::Keep,
            ApiVerdict::Drop => Verdict::Drop,
            ApiVerdict::Test => Verdict::Test,
        }
    }
}

/// Why a merchandiser overrides the model (`other` needs a comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApiOverrideReason {
    TrendSignal,
    MarketingPush,
    QualityIssue,
    SizeFitIssue,
    SupplierConstraint,
    BrandStrategy,
    DataError,
    Other,
}

impl From<ApiOverrideReason> for OverrideReason {
    fn from(r: ApiOverrideReason) -> Self {
        match r {
            ApiOverrideReason::TrendSignal => OverrideReason::TrendSignal,
            ApiOverrideReason::MarketingPush => OverrideReason::MarketingPush,
            ApiOverrideReason::QualityIssue => OverrideReason::QualityIssue,
            ApiOverrideReason::SizeFitIssue => OverrideReason::SizeFitIssue,
            ApiOverrideReason::SupplierConstraint => OverrideReason::SupplierConstraint,
            ApiOverrideReason::BrandStrategy => OverrideReason::BrandStrategy,
            ApiOverrideReason::DataError => OverrideReason::DataError,
            ApiOverrideReason::Other => OverrideReason::Other,
        }
    }
}

/// A merchandiser's override, live or not.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OverrideView {
    pub override_id: String,
    pub style_id: String,
    pub market: String,
    pub verdict: ApiVerdict,
    pub reason: String,
    pub comment: Option<String>,
    pub user: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<String>,
    /// The newer override of the same style and market that revoked this one.
    pub superseded_by: Option<String>,
    /// Units to reorder under this keep (none: the plan's proposal).
    pub reorder_units: Option<i64>,
    /// In force now: not revoked, not expired.
    pub live: bool,
}

impl OverrideView {
    pub fn new(o: &Override, now: DateTime<Utc>) -> Self {
        Self {
            override_id: o.override_id.clone(),
            style_id: o.style_id.clone(),
            market: o.market.clone(),
            verdict: o.verdict.into(),
            reason: o.reason.as_str().into(),
            comment: o.comment.clone(),
            user: o.user.clone(),
            created_at: o.created_at,
            expires_at: o.expires_at,
            revoked_at: o.revoked_at,
            revoked_by: o.revoked_by.clone(),
            superseded_by: o.superseded_by.clone(),
            reorder_units: o.reorder_units,
            live: o.is_live(now),
        }
    }
}

/// One style in one market (`ALL` = pooled over markets): the model's decision with
/// every number behind it, and the effective verdict after any live override.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DecisionView {
    pub style_id: String,
    pub name: Option<String>,
    pub category: String,
    pub market: String,
    pub launch_at: Option<DateTime<Utc>>,
    pub days_live: f64,
    /// In-stock days in the style's window.
    pub exposure_days: f64,
    pub sold_out: bool,
    pub views: i64,
    pub carts: i64,
    pub purchases: i64,
    pub units_sold: i64,
    pub units_returned: i64,
    pub units_received: i64,
    pub on_hand: i64,
    pub sell_through: f64,
    /// Gamma prior of the daily rate of sale (shape, rate).
    pub prior_shape: f64,
    pub prior_rate: f64,
    /// Gamma posterior of the daily rate of sale (shape, rate).
    pub rate_shape: f64,
    pub rate_rate: f64,
    /// Units/day at the keep and drop levels.
    pub keep_rate: f64,
    pub drop_rate: f64,
    pub p_keep: f64,
    pub p_drop: f64,
    pub conv_alpha: f64,
    pub conv_beta: f64,
    pub return_alpha: f64,
    pub return_beta: f64,
    pub projected_st_p10: f64,
    pub projected_st_p50: f64,
    pub projected_st_p90: f64,
    /// Days the stock on hand lasts at the posterior mean rate (null when nothing sells).
    pub days_of_cover: Option<f64>,
    /// What to order: the model's units, or under a live keep override the
    /// merchandiser's quantity (else the plan's proposal); 0 under a drop or test.
    pub reorder_units: i64,
    /// The model's units (0 unless the model keeps).
    pub model_reorder_units: i64,
    /// What the plan orders if the style is kept, whatever the verdict: what a keep
    /// override proposes.
    pub planned_reorder_units: i64,
    pub model_verdict: ApiVerdict,
    /// The verdict to act on: the live override's, else the model's.
    pub verdict: ApiVerdict,
    pub reasons: Vec<String>,
    /// For a style still testing: expected days to a keep or drop at its current rate.
    pub expected_days_to_verdict: Option<f64>,
    /// How sure the model's call is on its rule's scale: for a keep the probability
    /// the reorder makes money, for a drop that no reorder would (P(keep) / P(drop)
    /// under the sell-through rule); null for a test or a drop for returns.
    pub confidence: Option<f64>,
    /// The model's verdict in the run published before this one (null when there was
    /// none or it did not decide this row): a call that differs is new.
    pub previous_verdict: Option<ApiVerdict>,
    #[serde(rename = "override")]
    pub live_override: Option<OverrideView>,
}

/// The caller, as its token says.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub name: String,
    /// viewer, buyer, merchandiser, analyst or admin.
    pub role: String,
    pub may_override: bool,
    pub may_recompute: bool,
    pub may_sql: bool,
    /// Sees the daily loop's jobs and the webhooks.
    pub may_operate: bool,
}

/// A page of decisions.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionPage {
    pub run_id: String,
    pub as_of: DateTime<Utc>,
    pub policy_version: String,
    /// Rows matching the filters, over all pages.
    pub total: usize,
    pub items: Vec<DecisionView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A decision run's summary: the engine's, and whether it is the run served.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    /// Whether this is the run served (`GET /v1/decisions`, the `decisions` table).
    pub published: bool,
    #[serde(flatten)]
    pub run: RunSummary,
}

impl RunView {
    pub fn of(s: &RunSummary, published: bool) -> Self {
        Self {
            published,
            run: s.clone(),
        }
    }
}

/// How a row's call differs from the run it followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// A keep or drop where that run held none (or a test).
    New,
    /// That run's call, turned the other way past the policy's `reversal_probability`.
    Reversed,
    /// That run's call stands, though the model no longer makes it.
    Held,
    /// That run's call is withdrawn to test.
    Withdrawn,
}

/// One row whose call changed since the run its run followed, or that stands only
/// because nothing reversed it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeView {
    pub style_id: String,
    pub category: String,
    pub market: String,
    pub kind: ChangeKind,
    /// The call before (absent: none).
    pub before: Option<ApiVerdict>,
    pub after: ApiVerdict,
    /// The model's reorder under `after` (none for a held keep: a new reorder needs
    /// this run's evidence to clear the keep bar).
    pub reorder_units: i64,
    /// The row's reason codes: why the model called it so, then `held`, `reversed` or
    /// `wrong_call_control`.
    pub reasons: Vec<String>,
    /// How sure this run is of `after`, on its rule's scale.
    pub support: Option<f64>,
}

impl ChangeView {
    /// The row's change, if it has one.
    pub fn of(d: &Decision) -> Option<Self> {
        let held = d.reasons.contains(&Reason::Held);
        if d.previous_verdict == Some(d.verdict) && !held {
            return None;
        }
        let kind = if held {
            ChangeKind::Held
        } else if d.reasons.contains(&Reason::Reversed) {
            ChangeKind::Reversed
        } else if d.verdict == Verdict::Test {
            // A test where there was none before (a new style) is no change.
            d.previous_verdict?;
            ChangeKind::Withdrawn
        } else {
            ChangeKind::New
        };
        Some(Self {
            style_id: d.style_id.clone(),
            category: d.category.clone(),
            market: d.market.clone(),
            kind,
            before: d.previous_verdict.map(Into::into),
            after: d.verdict.into(),
            reorder_units: d.reorder_units,
            reasons: d.reasons.iter().map(|r| r.as_str().to_string()).collect(),
            support: d.support(d.verdict),
        })
    }
}

/// A run's changes against the run it followed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeList {
    pub run_id: String,
    pub previous_run_id: Option<String>,
    /// By style, then market.
    pub items: Vec<ChangeView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunList {
    /// Newest first.
    pub runs: Vec<RunView>,
}

/// One day of a style in one market.
#[derive(Debug, Serialize, ToSchema)]
pub struct DailyPoint {
    #[serde(flatten)]
    pub day: DailyRow,
    /// Out of stock for part of a day the style was on sale (neither its launch day nor
    /// the partial day of `as_of`).
    pub stocked_out: bool,
}

impl DailyPoint {
    pub fn new(d: &DailyRow, launch_day: Option<NaiveDate>, as_of: DateTime<Utc>) -> Self {
        let on_sale_all_day = launch_day.is_some_and(|l| d.day > l) && d.day < as_of.date_naive();
        Self {
            day: d.clone(),
            stocked_out: on_sale_all_day && d.exposure_hours < 23.99,
        }
    }
}

/// A style: catalog facts, its decisions per market, daily series and override history.
#[derive(Debug, Serialize, ToSchema)]
pub struct StyleDetail {
    pub run_id: String,
    pub as_of: DateTime<Utc>,
    pub style_id: String,
    pub name: Option<String>,
    pub category: String,
    pub brand: Option<String>,
    pub launch_at: Option<DateTime<Utc>>,
    pub list_price: f64,
    pub unit_cost: f64,
    pub lead_time_days: i64,
    pub moq: i64,
    /// The pooled row (`ALL`) first, then each market.
    pub decisions: Vec<DecisionView>,
    pub daily: Vec<DailyPoint>,
    /// Oldest first, revoked ones included.
    pub overrides: Vec<OverrideView>,
}

/// A new override.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOverrideBody {
    /// A market the style sells in, or `ALL` (the default) for the style as a whole.
    pub market: Option<String>,
    pub verdict: ApiVerdict,
    pub reason: ApiOverrideReason,
    /// Required when the reason is `other`.
    pub comment: Option<String>,
    /// The override lapses at this time.
    pub expires_at: Option<DateTime<Utc>>,
    /// With `keep`: the units to reorder instead of the plan's proposal
    /// (`planned_reorder_units`). A pooled (`ALL`) quantity is split over the markets
    /// as the plan splits its own.
    #[schema(minimum = 0)]
    pub reorder_units: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OverrideList {
    pub style_id: String,
    /// Oldest first, revoked ones included.
    pub items: Vec<OverrideView>,
}

/// Recompute now.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRunBody {
    /// Decide as of this time, RFC 3339 or a date (the end of that day, UTC)
    /// (default: the latest event).
    #[serde(default, deserialize_with = "crate::time_input::optional_instant")]
    pub as_of: Option<DateTime<Utc>>,
    /// Serve the run at once (default: yes, unless `as_of` is more than a day before
    /// the newest event: a look back is published only when asked).
    pub publish: Option<bool>,
}

/// One read-only query.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlBody {
    /// SQL over assay's tables and views: SELECT, EXPLAIN, SHOW, DESCRIBE.
    #[schema(
        example = "SELECT verdict, count(*) FROM decisions WHERE market = 'ALL' GROUP BY verdict"
    )]
    pub sql: String,
}

/// Stored backtests, newest first: each one's `scores.json` (range, styles, and per
/// policy and rule the scores overall and by category, calibration and expected
/// against observed wrong calls).
#[derive(Debug, Serialize, ToSchema)]
pub struct BacktestList {
    #[schema(value_type = Vec<Object>)]
    pub backtests: Vec<serde_json::Value>,
}

/// Health and readiness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: String,
    /// The published run this server serves, its as-of and policy.
    pub run_id: Option<String>,
    pub as_of: Option<DateTime<Utc>>,
    pub policy_version: Option<String>,
    /// How many event files could not be read and were set aside.
    pub set_aside_count: usize,
    /// Event files that could not be read and were moved to `DATA/quarantine/`: the
    /// server answers from the rest. Listed for an admin's token only; empty when every
    /// file is sound.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub set_aside_files: Vec<SetAsideFile>,
}

/// An event file taken out of the dataset because it could not be read.
#[derive(Debug, Serialize, ToSchema)]
pub struct SetAsideFile {
    /// Where it was, under `events/`.
    pub path: String,
    /// Why it could not be read.
    pub problem: String,
    /// Where it is now.
    pub moved_to: String,
}

/// What a row's view needs beyond the stored decision.
pub struct RowContext<'a> {
    pub name: Option<String>,
    pub launch_at: Option<DateTime<Utc>>,
    pub live: Option<&'a Override>,
    pub reorder_units: i64,
    pub expected_days_to_verdict: Option<f64>,
    pub confidence: Option<f64>,
    pub previous_verdict: Option<Verdict>,
}

pub fn decision_view(d: &Decision, row: RowContext<'_>, now: DateTime<Utc>) -> DecisionView {
    let RowContext {
        name,
        launch_at,
        live,
        reorder_units,
        expected_days_to_verdict,
        confidence,
        previous_verdict,
    } = row;
    DecisionView {
        style_id: d.style_id.clone(),
        name,
        category: d.category.clone(),
        market: d.market.clone(),
        launch_at,
        days_live: d.days_live,
        exposure_days: d.exposure_days,
        sold_out: d.sold_out,
        views: d.views,
        carts: d.carts,
        purchases: d.purchases,
        units_sold: d.units_sold,
        units_returned: d.units_returned,
        units_received: d.units_received,
        on_hand: d.on_hand,
        sell_through: d.sell_through,
        prior_shape: d.prior_shape,
        prior_rate: d.prior_rate,
        rate_shape: d.rate_shape,
        rate_rate: d.rate_rate,
        keep_rate: d.keep_rate,
        drop_rate: d.drop_rate,
        p_keep: d.p_keep,
        p_drop: d.p_drop,
        conv_alpha: d.conv_alpha,
        conv_beta: d.conv_beta,
        return_alpha: d.return_alpha,
        return_beta: d.return_beta,
        projected_st_p10: d.projected_st_p10,
        projected_st_p50: d.projected_st_p50,
        projected_st_p90: d.projected_st_p90,
        days_of_cover: d.days_of_cover.is_finite().then_some(d.days_of_cover),
        reorder_units,
        model_reorder_units: d.reorder_units,
        planned_reorder_units: d.planned_reorder_units,
        model_verdict: d.verdict.into(),
        verdict: live.map_or(d.verdict, |o| o.verdict).into(),
        reasons: d.reasons.iter().map(|r| r.as_str().to_string()).collect(),
        expected_days_to_verdict,
        confidence,
        previous_verdict: previous_verdict.map(Into::into),
        live_override: live.map(|o| OverrideView::new(o, now)),
    }
}

/// One job of the daily loop: an ingest of a watched file, a rollup refresh or a
/// decision run.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    pub job_id: String,
    /// `ingest`, `rollup` or `decide`.
    #[schema(example = "ingest")]
    pub kind: String,
    /// `running`, `succeeded`, `failed` or `interrupted` (the server ended first).
    #[schema(example = "succeeded")]
    pub status: String,
    /// What started it: `watch`, `after-ingest`, `schedule`, `assay serve` (start-up), or
    /// the API user who asked.
    pub trigger: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// From start to end, or to now while running.
    pub seconds: f64,
    /// Past twice the median duration of its kind's succeeded jobs (while running, or
    /// when it ended): worth a look.
    pub late: bool,
    /// The file an ingest took.
    pub source: Option<String>,
    /// Events added, rollup rows written, or decision rows.
    pub rows: Option<u64>,
    /// Rows an ingest rejected.
    pub rejects: Option<u64>,
    pub error: Option<String>,
    pub batch_id: Option<String>,
    pub run_id: Option<String>,
    /// Where a taken file went, and other facts of the outcome.
    pub note: Option<String>,
}

impl JobView {
    /// `median` is the median duration of the kind's succeeded jobs, if any.
    pub fn of(job: &Job, median: Option<f64>, now: DateTime<Utc>) -> Self {
        let seconds = job.seconds(now);
        Self {
            job_id: job.job_id.clone(),
            kind: job.kind.as_str().to_owned(),
            status: job.status.as_str().to_owned(),
            trigger: job.trigger.clone(),
            started_at: job.started_at,
            ended_at: job.ended_at,
            seconds,
            late: median.is_some_and(|m| seconds > 2.0 * m.max(0.001)),
            source: job.source.clone(),
            rows: job.rows,
            rejects: job.rejects,
            error: job.error.clone(),
            batch_id: job.batch_id.clone(),
            run_id: job.run_id.clone(),
            note: job.note.clone(),
        }
    }
}

/// A page of jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobView>,
    /// `before` for the next page; absent on the last.
    pub next_before: Option<String>,
}

/// A row's call as buying systems saw it: the model's, or a merchandiser's override.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct EffectiveCall {
    pub verdict: ApiVerdict,
    /// Units to reorder under `verdict`.
    pub reorder_units: i64,
    /// The model's own call, which an override may have replaced.
    pub model_verdict: ApiVerdict,
    /// The override in force, if any.
    pub override_id: Option<String>,
}

/// Why a row's effective call changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeCause {
    /// The model's call or reorder changed, under the same override (or none).
    Model,
    /// An override was made, revoked or expired.
    Override,
    ModelAndOverride,
}

/// A row whose effective verdict or reorder differs between two runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedItem {
    pub style_id: String,
    pub category: String,
    pub market: String,
    /// In the `since` run (absent: the row was not in it, e.g. a style launched since).
    pub before: Option<EffectiveCall>,
    /// In the served run (absent: the row is no longer decided).
    pub after: Option<EffectiveCall>,
    pub cause: ChangeCause,
    /// The served run's reason codes for the model's call.
    pub reasons: Vec<String>,
}

/// What changed for buying systems since a run they had read.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangeFeed {
    pub since: String,
    /// The served run the items are compared with.
    pub run_id: String,
    /// By style, then `ALL` before the markets.
    pub items: Vec<FeedItem>,
}

/// What a webhook can be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum WebhookEvent {
    /// A decision run was computed and published.
    #[serde(rename = "run.completed")]
    RunCompleted,
    /// A published run changed effective verdicts or reorders (the items, as in
    /// `GET /v1/changes`).
    #[serde(rename = "decision.changed")]
    DecisionChanged,
    #[serde(rename = "override.created")]
    OverrideCreated,
    /// A reorder was approved, by a merchandiser or the auto-approve rule.
    #[serde(rename = "reorder.approved")]
    ReorderApproved,
}

impl From<WebhookEvent> for EventType {
    fn from(e: WebhookEvent) -> Self {
        match e {
            WebhookEvent::RunCompleted => EventType::RunCompleted,
            WebhookEvent::DecisionChanged => EventType::DecisionChanged,
            WebhookEvent::OverrideCreated => EventType::OverrideCreated,
            WebhookEvent::ReorderApproved => EventType::ReorderApproved,
        }
    }
}

/// A webhook subscription to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhookBody {
    /// Where deliveries are POSTed: an `http://` or `https://` URL.
    #[schema(
        pattern = r"^https?://[A-Za-z0-9._~-]+(:[0-9]{1,5})?(/\S*)?$",
        example = "https://erp.example.com/assay-events"
    )]
    pub url: String,
    #[schema(min_items = 1)]
    pub events: Vec<WebhookEvent>,
    /// Signs every delivery; one is made and shown once when absent.
    #[schema(min_length = 16, max_length = 256)]
    pub secret: Option<String>,
}

/// A webhook subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    pub webhook_id: String,
    pub url: String,
    pub events: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    /// Only in the answer that created it: keep it to check `X-Assay-Signature`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl WebhookView {
    pub fn of(sub: &Subscription, with_secret: bool) -> Self {
        Self {
            webhook_id: sub.webhook_id.clone(),
            url: sub.url.clone(),
            events: sub.events.iter().map(|e| e.as_str().to_owned()).collect(),
            created_at: sub.created_at,
            created_by: sub.created_by.clone(),
            secret: with_secret.then(|| sub.secret.clone()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookView>,
}

/// One try to deliver an event.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    pub at: DateTime<Utc>,
    /// The subscriber's HTTP status, when it answered.
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub seconds: f64,
}

/// An event's delivery to a subscriber.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// The event's number in the outbox (deliveries are not ordered; this is).
    pub seq: u64,
    pub event_id: String,
    pub event_type: String,
    /// `pending`, `delivered` or `gave_up`.
    #[schema(example = "delivered")]
    pub state: String,
    pub attempts: Vec<AttemptView>,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl DeliveryView {
    pub fn of(d: &Delivery) -> Self {
        Self {
            seq: d.seq,
            event_id: d.event_id.clone(),
            event_type: d.event_type.as_str().to_owned(),
            state: match d.state {
                DeliveryState::Pending => "pending",
                DeliveryState::Delivered => "delivered",
                DeliveryState::GaveUp => "gave_up",
            }
            .to_owned(),
            attempts: d
                .attempts
                .iter()
                .map(|a| AttemptView {
                    at: a.at,
                    status_code: a.status_code,
                    error: a.error.clone(),
                    seconds: a.seconds,
                })
                .collect(),
            next_attempt_at: d.next_attempt_at,
        }
    }
}

/// A subscriber's deliveries, newest event first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub webhook_id: String,
    pub items: Vec<DeliveryView>,
}

/// A keep's reorder: proposed by the served run, or approved, rejected or exported.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReorderView {
    /// `<run_id>/<style_id>/<market>`.
    pub reorder_id: String,
    pub run_id: String,
    pub style_id: String,
    pub market: String,
    pub category: String,
    /// `proposed`, `approved`, `rejected` or `exported`.
    #[schema(example = "approved")]
    pub status: String,
    /// Units to order: the run's proposal, or what the approver set (0 when rejected).
    pub units: i64,
    pub proposed_units: i64,
    /// P(keep) of the row, for a proposal.
    pub p_keep: Option<f64>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub comment: Option<String>,
    /// The rule that approved it without a person, in words.
    pub auto_rule: Option<String>,
    pub export_id: Option<String>,
    pub exported_at: Option<DateTime<Utc>>,
}

impl ReorderView {
    pub fn of(r: &Reorder) -> Self {
        Self {
            reorder_id: r.reorder_id.clone(),
            run_id: r.run_id.clone(),
            style_id: r.style_id.clone(),
            market: r.market.clone(),
            category: r.category.clone(),
            status: r.status.as_str().to_owned(),
            units: r.units,
            proposed_units: r.proposed_units,
            p_keep: None,
            decided_by: Some(r.by.clone()),
            decided_at: Some(r.decided_at),
            comment: r.comment.clone(),
            auto_rule: r.auto_rule.clone(),
            export_id: r.export_id.clone(),
            exported_at: r.exported_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReorderList {
    /// By reorder id.
    pub items: Vec<ReorderView>,
}

/// A merchandiser's decision on a proposed reorder of the served run.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReorderDecisionBody {
    pub run_id: String,
    pub style_id: String,
    pub market: String,
    pub decision: ReorderDecisionKind,
    /// Units to order instead of the proposal (an approval only).
    #[schema(minimum = 1)]
    pub units: Option<i64>,
    /// Required for a rejection.
    #[schema(max_length = 2000)]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReorderDecisionKind {
    Approve,
    Reject,
}

/// What an export wrote.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportView {
    pub export_id: String,
    /// Reorders in it (they are `exported` from now on).
    pub count: usize,
    /// The CSV and Parquet files, as users name them.
    pub files: Vec<String>,
}
