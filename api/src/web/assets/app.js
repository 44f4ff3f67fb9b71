// assay's merchandiser page: the keep / drop / test list, a page per style, overrides
// and CSV export, over the JSON API of the same origin. No framework, no outside assets.
"use strict";

const TOKEN_KEY = "assay-token";
const PAGE_SIZE = 100;

const REASONS = {
  high_rate: "sells fast: rate of sale above the keep level",
  low_rate: "sells slowly: rate of sale below the drop level",
  high_returns: "too many returns",
  max_window: "test window over without a clear keep",
  sold_out: "sold out",
  too_early: "too early: needs more days live or in stock",
  wrong_call_control: "held back: the run's bound on wrong calls",
  profitable_reorder: "a reorder is expected to make money",
  unprofitable_reorder: "no reorder is likely to make money over the rest of the season",
  season_over: "a reorder would arrive after the season ends",
  uncertain: "between the drop and keep levels: not settled yet",
  held: "the last list's call stands: the evidence weakened but has not reversed it",
  reversed: "the last list's call reversed: the evidence now says the other way, clearly",
};
const OVERRIDE_REASONS = {
  trend_signal: "trend signal", marketing_push: "marketing push", quality_issue: "quality issue",
  size_fit_issue: "size / fit issue", supplier_constraint: "supplier constraint",
  brand_strategy: "brand strategy", data_error: "data error", other: "other",
};

const state = {
  me: null,
  run: null,
  rows: [],
  filters: { verdict: "", category: "", market: "ALL", week: "", confidence: "", search: "" },
  sort: { key: "attention", dir: 1 },
  hasPrevious: false,
  page: 0,
};

// ---------- small helpers ----------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v === true) node.setAttribute(k, "");
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

const pct = (x, digits = 0) => (x === null || x === undefined || Number.isNaN(x) ? "" : (100 * x).toFixed(digits) + " %");
const num = (x, digits = 0) => (x === null || x === undefined || Number.isNaN(x) ? "" : Number(x).toFixed(digits));
const isoDate = (t) => (t ? t.slice(0, 10) : "");

/// Monday of the ISO week of a timestamp, as YYYY-MM-DD.
function launchWeek(t) {
  if (!t) return "";
  const d = new Date(t);
  const day = (d.getUTCDay() + 6) % 7;
  d.setUTCDate(d.getUTCDate() - day);
  return d.toISOString().slice(0, 10);
}

/// Quantile of Gamma(shape, rate) by the Wilson–Hilferty approximation (within ~1 % for
/// the posterior shapes assay produces, which are at least the prior's ~1).
function gammaQuantile(shape, rate, z) {
  const k = Math.max(shape, 1e-9);
  const t = 1 - 1 / (9 * k) + z / (3 * Math.sqrt(k));
  return (k / rate) * Math.max(t, 0) ** 3;
}
const Z90 = 1.2815515655446004;

function rateInterval(r) {
  return {
    mean: r.rate_shape / r.rate_rate,
    p10: gammaQuantile(r.rate_shape, r.rate_rate, -Z90),
    p90: gammaQuantile(r.rate_shape, r.rate_rate, Z90),
  };
}

/// log Γ(x) by Lanczos (g = 7, n = 9), for the posterior density chart.
function logGamma(x) {
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
    -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6,
    1.5056327351493116e-7];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  x -= 1;
  let a = c[0];
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}
function gammaPdf(x, shape, rate) {
  if (x <= 0) return 0;
  return Math.exp(shape * Math.log(rate) - logGamma(shape) + (shape - 1) * Math.log(x) - rate * x);
}

function reasonWords(codes) {
  return (codes || []).map((c) => REASONS[c] || c.replaceAll("_", " ")).join("; ");
}

/// The row's reasons in plain words; a style still testing also says how long it is
/// expected to take.
function whyText(r) {
  const words = reasonWords(r.reasons) || (r.model_verdict === "test" ? "still testing" : "");
  const days = r.expected_days_to_verdict;
  if (r.model_verdict !== "test" || days === null || days === undefined) return words;
  const n = Math.max(1, Math.ceil(days));
  return `${words}; about ${n} more day${n === 1 ? "" : "s"} expected`;
}

// ---------- the API ----------

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = Object.assign({ Accept: "application/json" }, options.headers || {});
  if (token) headers.Authorization = "Bearer " + token;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (_) {
    data = null;
  }
  if (!response.ok) {
    const detail = (data && (data.detail || data.title)) || response.statusText;
    if (response.status === 401 && path !== "/v1/me") signOut("Your session ended: sign in again.");
    throw new ApiError(response.status, detail);
  }
  return data;
}

// ---------- sign-in ----------

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  document.getElementById("jobs-link").hidden = true;
  document.getElementById("queue-link").hidden = true;
  state.me = null;
  state.rows = [];
  renderSignIn(message);
}

function renderSignIn(message) {
  document.getElementById("who").textContent = "";
  document.getElementById("run-info").textContent = "";
  document.getElementById("sign-out").hidden = true;
  const error = el("p", { class: "error", role: "alert", id: "sign-in-error" }, message || "");
  const input = el("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true });
  const form = el("form", { class: "sign-in", "aria-labelledby": "sign-in-title" },
    el("h1", { id: "sign-in-title" }, "Sign in"),
    el("p", {}, "Paste the API token you were given (", el("code", {}, "assay token create"), "). It is kept for this browser tab only."),
    el("label", { for: "token" }, "API token"),
    input,
    error,
    el("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    try {
      await start();
    } catch (err) {
      sessionStorage.removeItem(TOKEN_KEY);
      error.textContent = err.status === 401 ? "That token is not valid." : "Sign-in failed: " + err.message;
    }
  });
  const app = document.getElementById("app");
  app.replaceChildren(form);
  input.focus();
}

async function start() {
  state.me = await api("/v1/me");
  document.getElementById("who").textContent = `${state.me.name} (${state.me.role})`;
  document.getElementById("jobs-link").hidden = !state.me.may_operate;
  document.getElementById("queue-link").hidden = false;
  document.getElementById("sign-out").hidden = false;
  await loadList();
  route();
}

// ---------- data ----------

async function loadList() {
  const rows = [];
  let cursor = null;
  let page;
  do {
    const query = new URLSearchParams({ limit: "1000" });
    if (cursor) query.set("cursor", cursor);
    page = await api("/v1/decisions?" + query);
    rows.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  rows.forEach(prepare);
  state.rows = rows;
  state.hasPrevious = rows.some((r) => r.previous_verdict);
  const run = await api("/v1/runs/" + encodeURIComponent(page.run_id));
  state.run = run;
  document.getElementById("run-info").textContent =
    `Published run ${run.run_id} · as of ${run.as_of.replace("T", " ").slice(0, 16)} UTC · ` +
    `policy ${run.policy_version} · expected wrong calls: ` +
    `${num(run.expected_wrong_keeps, 1)} keeps, ${num(run.expected_wrong_drops, 1)} drops`;
}

/// What the list sorts and filters on, computed once per row.
function prepare(r) {
  r._rate = rateInterval(r);
  r._week = launchWeek(r.launch_at);
  r._confidence = r.confidence ?? Math.max(r.p_keep, r.p_drop);
}

/// Replaces the rows of one style with its fresh decisions (after an override).
async function refreshStyle(styleId) {
  const style = await api("/v1/styles/" + encodeURIComponent(styleId));
  for (const fresh of style.decisions) {
    const i = state.rows.findIndex((r) => r.style_id === fresh.style_id && r.market === fresh.market);
    prepare(fresh);
    if (i >= 0) state.rows[i] = fresh;
  }
  return style;
}

// ---------- the list ----------

/// Whether the model's call differs from the previous published run's ("new" for a
/// row that run did not have); nothing is new on the first run.
function change(r) {
  if (!state.hasPrevious) return null;
  if (!r.previous_verdict) return "new";
  return r.previous_verdict !== r.model_verdict ? "was " + r.previous_verdict : null;
}

/// What needs a merchandiser first: new keeps (they order), other changed calls,
/// overrides that disagree with the model, then keeps, tests and drops.
function attentionRank(r) {
  const changed = change(r) !== null;
  if (changed && r.model_verdict === "keep") return 0;
  if (changed) return 1;
  if (r.override && r.override.verdict !== r.model_verdict) return 2;
  return { keep: 3, test: 4, drop: 5 }[r.verdict];
}

const overrideWords = (o) => `override by ${o.user}: ${OVERRIDE_REASONS[o.reason] || o.reason}`;

/// The list's columns: the decision first, then (behind the column picker) the numbers
/// behind it. `shown` is the default.
const COLUMNS = [
  { key: "style_id", label: "Style", shown: true, value: (r) => r.style_id, text: (r) => r.style_id },
  { key: "name", label: "Name", shown: true, value: (r) => r.name || "", text: (r) => r.name || "" },
  { key: "verdict", label: "Verdict", shown: true, value: (r) => r.verdict,
    text: (r) => (r.override ? `${r.model_verdict} → ${r.verdict} (${overrideWords(r.override)})` : r.verdict) },
  { key: "reasons", label: "Why", shown: true, value: whyText, text: whyText },
  { key: "reorder_units", label: "Reorder", shown: true, num: true, value: (r) => r.reorder_units, text: (r) => r.reorder_units },
  { key: "confidence", label: "Confidence", shown: true, num: true, value: (r) => r.confidence ?? -1,
    text: (r) => pct(r.confidence, 0) },
  { key: "market", label: "Market", shown: true, value: (r) => r.market, text: (r) => r.market },
  { key: "category", label: "Category", shown: true, value: (r) => r.category, text: (r) => r.category },
  { key: "launch_at", label: "Launched", value: (r) => r.launch_at || "", text: (r) => isoDate(r.launch_at) },
  { key: "days_live", label: "Days live", num: true, value: (r) => r.days_live, text: (r) => num(r.days_live, 1) },
  { key: "units_received", label: "Received", num: true, value: (r) => r.units_received, text: (r) => r.units_received },
  { key: "units_sold", label: "Sold", num: true, value: (r) => r.units_sold, text: (r) => r.units_sold },
  { key: "on_hand", label: "On hand", num: true, value: (r) => r.on_hand, text: (r) => r.on_hand },
  { key: "sell_through", label: "Sell-through", num: true, value: (r) => r.sell_through, text: (r) => pct(r.sell_through, 1),
    title: "units sold net of returns over units received" },
  { key: "rate", label: "Rate/day (P10–P90)", num: true, value: (r) => r._rate.mean,
    text: (r) => `${num(r._rate.mean, 2)} (${num(r._rate.p10, 2)}–${num(r._rate.p90, 2)})` },
  { key: "p_keep", label: "P(keep)", num: true, value: (r) => r.p_keep, text: (r) => pct(r.p_keep, 1),
    title: "probability the rate of sale is above the keep level" },
  { key: "p_drop", label: "P(drop)", num: true, value: (r) => r.p_drop, text: (r) => pct(r.p_drop, 1),
    title: "probability the rate of sale is below the drop level" },
  { key: "projected", label: "Projected ST (P10–P90)", num: true, value: (r) => r.projected_st_p50,
    text: (r) => `${pct(r.projected_st_p50)} (${pct(r.projected_st_p10)}–${pct(r.projected_st_p90)})` },
];
const SORTS = [{ key: "attention", label: "needs attention", value: attentionRank }, ...COLUMNS];
const COLUMNS_KEY = "assay-columns";

/// The columns the merchandiser picked (kept in this browser), else the defaults.
function shownColumns() {
  let keys = null;
  try {
    keys = JSON.parse(localStorage.getItem(COLUMNS_KEY));
  } catch (_) {
    keys = null;
  }
  const picked = Array.isArray(keys) ? new Set(keys) : null;
  return COLUMNS.filter((c) => (picked ? picked.has(c.key) : c.shown));
}

function pickColumns(keys) {
  localStorage.setItem(COLUMNS_KEY, JSON.stringify(keys));
  renderTableOnly();
}

function filteredRows() {
  const f = state.filters;
  const search = f.search.trim().toLowerCase();
  const minConfidence = f.confidence ? Number(f.confidence) : 0;
  const rows = state.rows.filter((r) =>
    (!f.verdict || r.verdict === f.verdict) &&
    (!f.category || r.category === f.category) &&
    (!f.market || r.market === f.market) &&
    (!f.week || r._week === f.week) &&
    r._confidence >= minConfidence &&
    (!search || r.style_id.toLowerCase().includes(search) || (r.name || "").toLowerCase().includes(search)));
  const column = SORTS.find((c) => c.key === state.sort.key) || SORTS[0];
  const dir = state.sort.dir;
  const compare = (x, y) => (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y)));
  rows.sort((a, b) => dir * compare(column.value(a), column.value(b)) ||
    // Ties (always, under "needs attention"): the bigger order, then the surer call.
    b.reorder_units - a.reorder_units || b._confidence - a._confidence ||
    a.style_id.localeCompare(b.style_id) || a.market.localeCompare(b.market));
  return rows;
}

function distinct(key) {
  return [...new Set(state.rows.map((r) => r[key]).filter(Boolean))].sort();
}

function select(id, label, value, options, onChange) {
  const s = el("select", { id, name: id },
    options.map(([v, text]) => el("option", { value: v, selected: v === value }, text)));
  s.addEventListener("change", () => onChange(s.value));
  return el("div", { class: "field" }, el("label", { for: id }, label), s);
}

function renderList() {
  const f = state.filters;
  const setFilter = (key) => (value) => {
    state.filters[key] = value;
    state.page = 0;
    renderTableOnly();
  };
  const search = el("input", { id: "search", name: "search", type: "search", value: f.search, placeholder: "style id or name" });
  search.addEventListener("input", () => {
    state.filters.search = search.value;
    state.page = 0;
    renderTableOnly();
  });
  const filters = el("form", { class: "filters", "aria-label": "Filters", onsubmit: (e) => e.preventDefault() },
    select("f-verdict", "Verdict", f.verdict, [["", "any"], ["keep", "keep"], ["drop", "drop"], ["test", "test"]], setFilter("verdict")),
    select("f-category", "Category", f.category, [["", "any"], ...distinct("category").map((c) => [c, c])], setFilter("category")),
    select("f-market", "Market", f.market, [["", "any"], ...distinct("market").map((m) => [m, m === "ALL" ? "ALL (pooled)" : m])], setFilter("market")),
    select("f-week", "Launch week", f.week, [["", "any"], ...distinct("_week").map((w) => [w, "week of " + w])], setFilter("week")),
    select("f-confidence", "Confidence", f.confidence,
      [["", "any"], ["0.8", "≥ 80 %"], ["0.9", "≥ 90 %"], ["0.95", "≥ 95 %"]], setFilter("confidence")),
    el("div", { class: "field" }, el("label", { for: "search" }, "Search"), search),
    select("f-sort", "Sort by", state.sort.key, SORTS.map((c) => [c.key, c.label]), (key) => {
      const c = SORTS.find((x) => x.key === key);
      state.sort = { key, dir: c.num ? -1 : 1 };
      renderTableOnly();
    }),
    columnPicker(),
    el("div", { class: "field" }, el("span", { class: "label" }, "\u00a0"),
      el("button", { type: "button", id: "export", onclick: () => exportCsv(filteredRows()) }, "Export CSV")));
  document.getElementById("app").replaceChildren(el("h1", {}, "Keep / drop / test"), filters,
    el("p", { class: "counts", id: "counts", "aria-live": "polite" }), el("div", { id: "table-wrap" }));
  renderTableOnly();
}

/// A checkbox per column; the choice is kept in this browser.
function columnPicker() {
  const shown = new Set(shownColumns().map((c) => c.key));
  const boxes = COLUMNS.map((c) => {
    const box = el("input", { type: "checkbox", id: `col-${c.key}`, name: "columns", value: c.key, checked: shown.has(c.key) });
    box.addEventListener("change", () => {
      const picked = [...document.querySelectorAll('input[name="columns"]:checked')].map((b) => b.value);
      pickColumns(picked);
    });
    return el("label", { for: `col-${c.key}` }, box, " ", c.label);
  });
  const reset = el("button", { type: "button", class: "small", onclick: () => {
    localStorage.removeItem(COLUMNS_KEY);
    renderList();
  } }, "Defaults");
  return el("div", { class: "field" }, el("span", { class: "label" }, "\u00a0"),
    el("details", { class: "columns", id: "columns" }, el("summary", {}, "Columns"),
      el("div", { class: "column-list" }, boxes, reset)));
}

function verdictCell(r) {
  const cell = el("td", { class: "verdict", "data-col": "verdict" });
  if (r.override) {
    cell.append(el("span", { class: `badge model ${r.model_verdict}`, title: "the model's verdict" }, r.model_verdict),
      " → ", el("span", { class: `badge effective ${r.verdict}` }, r.verdict), " ",
      el("span", { class: "override-note", title: `${overrideWords(r.override)}${r.override.comment ? ": " + r.override.comment : ""}` },
        `override by ${r.override.user}`));
  } else {
    cell.append(el("span", { class: `badge effective ${r.verdict}` }, r.verdict));
  }
  const changed = change(r);
  if (changed) cell.append(" ", el("span", { class: "change", title: "since the previous published run" }, changed));
  return cell;
}

function renderTableOnly() {
  const rows = filteredRows();
  const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
  state.page = Math.min(state.page, pages - 1);
  const shown = rows.slice(state.page * PAGE_SIZE, (state.page + 1) * PAGE_SIZE);
  const counts = { keep: 0, drop: 0, test: 0 };
  for (const r of rows) counts[r.verdict] += 1;
  const countsNode = document.getElementById("counts");
  if (countsNode) {
    countsNode.replaceChildren(`${rows.length} rows: `,
      el("span", { class: "badge keep" }, `${counts.keep} keep`), " ",
      el("span", { class: "badge drop" }, `${counts.drop} drop`), " ",
      el("span", { class: "badge test" }, `${counts.test} test`));
  }
  const columns = shownColumns();
  const sortSelect = document.getElementById("f-sort");
  if (sortSelect) sortSelect.value = state.sort.key;
  const head = el("tr", {}, columns.map((c) => {
    const sorted = state.sort.key === c.key;
    const button = el("button", { type: "button", class: "sort", title: c.title,
      onclick: () => {
        state.sort = { key: c.key, dir: sorted ? -state.sort.dir : (c.num ? -1 : 1) };
        renderTableOnly();
      } }, c.label, sorted ? (state.sort.dir > 0 ? " ▲" : " ▼") : "");
    return el("th", { scope: "col", class: c.num ? "num" : "", "data-col": c.key,
      "aria-sort": sorted ? (state.sort.dir > 0 ? "ascending" : "descending") : "none" }, button);
  }), el("th", { scope: "col" }, el("span", { class: "visually-hidden" }, "Actions")));

  const body = document.createDocumentFragment();
  for (const r of shown) {
    const cells = columns.map((c) => {
      if (c.key === "style_id") {
        return el("td", { "data-col": c.key }, el("a", { href: `#/style/${encodeURIComponent(r.style_id)}` }, r.style_id));
      }
      if (c.key === "verdict") return verdictCell(r);
      const text = String(c.text(r));
      const clipped = c.key === "reasons" || c.key === "name";
      // Long text stays on one line (rows of one height); the whole of it is the title.
      if (clipped) return el("td", { "data-col": c.key, title: text || null }, el("span", { class: `clip ${c.key}` }, text));
      return el("td", { class: c.num ? "num" : null, "data-col": c.key }, text);
    });
    const actions = el("td", { class: "row-actions" });
    if (state.me && state.me.may_override) {
      actions.append(el("button", { type: "button", class: "small", "data-action": "override",
        "aria-label": `Override ${r.style_id} ${r.market}`, onclick: () => openOverride(r, () => renderTableOnly()) }, "Override"));
      if (r.override) {
        actions.append(" ", el("button", { type: "button", class: "small", "data-action": "revoke",
          "aria-label": `Revoke the override of ${r.style_id} ${r.market}`,
          onclick: () => revoke(r.override, r.style_id, () => renderTableOnly()) }, "Revoke"));
      }
    }
    body.append(el("tr", { "data-style": r.style_id, "data-market": r.market }, cells, actions));
  }
  const table = el("table", { class: "list", id: "list" },
    el("caption", { class: "visually-hidden" }, "Decisions of the latest run"),
    el("thead", {}, head), el("tbody", {}, body));
  const pager = el("nav", { class: "pager", "aria-label": "Pages" },
    el("button", { type: "button", id: "prev", disabled: state.page === 0, onclick: () => { state.page -= 1; renderTableOnly(); } }, "← Previous"),
    el("span", {}, ` page ${state.page + 1} of ${pages} `),
    el("button", { type: "button", id: "next", disabled: state.page >= pages - 1, onclick: () => { state.page += 1; renderTableOnly(); } }, "Next →"));
  const wrap = document.getElementById("table-wrap");
  if (wrap) wrap.replaceChildren(el("div", { class: "scroll" }, table), pager);
}

// ---------- CSV export ----------

/// A cell quoted when it must be, and written as text (a leading ') when a spreadsheet
/// would run it as a formula; numbers stay numbers. The server's CSV does the same.
function csvCell(value) {
  let s = value === null || value === undefined ? "" : String(value);
  if (/^[=+\-@\t\r]/.test(s) && Number.isNaN(Number(s.trim()))) s = "'" + s;
  return /[",\n\r]/.test(s) ? '"' + s.replaceAll('"', '""') + '"' : s;
}

/// Exactly the rows and columns the list shows, filters and sort applied; UTF-8 with a
/// byte-order mark so Excel reads it as UTF-8, dates ISO 8601, numbers unformatted.
function csvText(rows) {
  const header = ["style_id", "name", "category", "market", "launched", "days_live", "units_received",
    "units_sold", "on_hand", "sell_through", "rate_per_day", "rate_p10", "rate_p90", "p_keep", "p_drop",
    "projected_st_p10", "projected_st_p50", "projected_st_p90", "reorder_units", "model_verdict", "verdict",
    "override_by", "override_reason", "override_comment", "reasons"];
  const lines = [header.join(",")];
  for (const r of rows) {
    lines.push([r.style_id, r.name || "", r.category, r.market, isoDate(r.launch_at), num(r.days_live, 2),
      r.units_received, r.units_sold, r.on_hand, num(r.sell_through, 4), num(r._rate.mean, 4),
      num(r._rate.p10, 4), num(r._rate.p90, 4), num(r.p_keep, 4), num(r.p_drop, 4),
      num(r.projected_st_p10, 4), num(r.projected_st_p50, 4), num(r.projected_st_p90, 4), r.reorder_units,
      r.model_verdict, r.verdict, r.override ? r.override.user : "", r.override ? r.override.reason : "",
      r.override ? r.override.comment || "" : "", reasonWords(r.reasons)].map(csvCell).join(","));
  }
  return "\ufeff" + lines.join("\r\n") + "\r\n";
}

function exportCsv(rows) {
  const blob = new Blob([csvText(rows)], { type: "text/csv;charset=utf-8" });
  const url = URL.createObjectURL(blob);
  const asOf = state.run ? state.run.as_of.slice(0, 10) : "latest";
  const a = el("a", { href: url, download: `assay-decisions-${asOf}.csv` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// ---------- overrides ----------

function openOverride(row, after) {
  const dialog = document.getElementById("override-dialog");
  const form = document.getElementById("override-form");
  form.reset();
  document.getElementById("override-subject").textContent =
    `${row.style_id} ${row.name || ""} · ${row.market} · model says ${row.model_verdict}`;
  const verdict = document.getElementById("ov-verdict");
  verdict.value = row.model_verdict === "keep" ? "drop" : "keep";
  document.getElementById("ov-error").textContent = "";
  // A keep orders something: the plan's proposal, which the merchandiser may change.
  const reorder = document.getElementById("ov-reorder");
  const planned = row.planned_reorder_units;
  reorder.value = planned > 0 ? planned : "";
  // With nothing planned (no reorder expected to pay) a keep would order nothing:
  // say so and ask for the quantity.
  document.getElementById("ov-reorder-plan").textContent = planned > 0
    ? `(the plan proposes ${planned})`
    : "(the plan proposes none, as no reorder is expected to pay: enter how many to order)";
  const showReorder = () => {
    const keep = verdict.value === "keep";
    document.getElementById("ov-reorder-field").hidden = !keep;
    reorder.required = keep && planned <= 0;
    reorder.min = keep && planned <= 0 ? "1" : "0";
  };
  verdict.onchange = showReorder;
  showReorder();
  const reason = document.getElementById("ov-reason");
  const comment = document.getElementById("ov-comment");
  const need = () => {
    const required = reason.value === "other";
    comment.required = required;
    document.getElementById("ov-comment-need").textContent = required ? "(required for other)" : "(optional)";
  };
  reason.onchange = need;
  need();
  document.getElementById("ov-cancel").onclick = () => dialog.close();
  form.onsubmit = async (e) => {
    e.preventDefault();
    const expires = document.getElementById("ov-expires").value;
    const body = {
      verdict: verdict.value,
      reason: reason.value,
      market: row.market,
      comment: comment.value.trim() || null,
      expires_at: expires ? new Date(expires).toISOString() : null,
    };
    if (body.verdict === "keep" && reorder.value !== "" && Number(reorder.value) !== planned) {
      body.reorder_units = Number(reorder.value);
    }
    if (body.reason === "other" && !body.comment) {
      document.getElementById("ov-error").textContent = "Say why in the comment: the reason is “other”.";
      comment.focus();
      return;
    }
    try {
      await api(`/v1/styles/${encodeURIComponent(row.style_id)}/overrides`, {
        method: "POST", body, headers: { "Idempotency-Key": crypto.randomUUID() },
      });
      await refreshStyle(row.style_id);
      dialog.close();
      after();
    } catch (err) {
      document.getElementById("ov-error").textContent = err.message;
    }
  };
  dialog.showModal();
  document.getElementById("ov-verdict").focus();
}

async function revoke(override, styleId, after) {
  if (!confirm(`Revoke the ${override.verdict} override of ${styleId} (${override.market})?`)) return;
  try {
    await api(`/v1/overrides/${encodeURIComponent(override.override_id)}`, { method: "DELETE" });
    await refreshStyle(styleId);
    after();
  } catch (err) {
    alert("Could not revoke: " + err.message);
  }
}

// ---------- the style page ----------

function chartFrame(width, height, title) {
  return svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": title, class: "chart" },
    svg("title", {}, title));
}

function funnelChart(d) {
  const steps = [["views", d.views], ["carts", d.carts], ["purchases", d.purchases], ["units sold", d.units_sold], ["returns", d.units_returned]];
  const width = 460;
  const bar = 26;
  const chart = chartFrame(width, steps.length * (bar + 8) + 10, `Funnel of ${d.style_id} in ${d.market}`);
  const max = Math.max(1, ...steps.map((s) => s[1]));
  steps.forEach(([label, value], i) => {
    const y = 5 + i * (bar + 8);
    const w = Math.max(1, (value / max) * (width - 200));
    chart.append(svg("text", { x: 0, y: y + bar * 0.7, class: "axis" }, label),
      svg("rect", { x: 90, y, width: w, height: bar, class: "bar" }),
      svg("text", { x: 96 + w, y: y + bar * 0.7, class: "value" }, String(value)));
  });
  return chart;
}

/// Round steps for an axis from 0 to `max`: about `count` ticks at 1, 2 or 5 × 10^k.
function ticks(max, count = 4) {
  if (!(max > 0)) return [0];
  const raw = max / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((x) => x >= raw);
  const out = [];
  for (let v = 0; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/// A text label kept inside the chart: anchored at its end when it would run off the
/// right edge, at its start otherwise.
function label(x, y, text, width, cls = "axis", room = 90) {
  const end = x > width - room;
  return svg("text", { x: end ? Math.min(x, width - 2) : x, y, class: cls, "text-anchor": end ? "end" : "start" }, text);
}

function dailyChart(daily, market, launchAt) {
  // The receipt lands the day before launch: the series starts on the launch day.
  const first = isoDate(launchAt);
  const rows = daily.filter((r) => (r.market === market || market === "ALL") && (!first || r.day >= first));
  const byDay = new Map();
  for (const r of rows) {
    const cur = byDay.get(r.day) || { units: 0, outOfStock: false };
    cur.units += r.units;
    cur.outOfStock = cur.outOfStock || r.stocked_out;
    byDay.set(r.day, cur);
  }
  const days = [...byDay.keys()].sort();
  const width = 620;
  const height = 210;
  const chart = chartFrame(width, height, `Daily units sold, ${market}, from launch; stock-out days marked`);
  if (days.length === 0) {
    chart.append(svg("text", { x: 10, y: 30, class: "axis" }, "no daily series yet"));
    return chart;
  }
  const left = 40;
  const bottom = height - 36;
  const top = 10;
  const yTicks = ticks(Math.max(1, ...days.map((d) => byDay.get(d).units)));
  const max = yTicks[yTicks.length - 1];
  const step = (width - left - 10) / days.length;
  const sy = (v) => bottom - (v / max) * (bottom - top);
  for (const t of yTicks) {
    chart.append(svg("line", { x1: left - 4, x2: width - 10, y1: sy(t), y2: sy(t), class: "grid" }),
      svg("text", { x: left - 6, y: sy(t) + 4, class: "axis", "text-anchor": "end" }, String(t)));
  }
  days.forEach((day, i) => {
    const v = byDay.get(day);
    const x = left + i * step;
    if (v.outOfStock) {
      chart.append(svg("rect", { x, y: top, width: Math.max(step - 1, 1), height: bottom - top, class: "stockout" },
        svg("title", {}, `${day}: out of stock part of the day`)));
    }
    chart.append(svg("rect", { x, y: sy(v.units), width: Math.max(step - 2, 1), height: bottom - sy(v.units), class: "bar" },
      svg("title", {}, `${day}: ${v.units} units`)));
    // A tick every week from launch, dated every other week.
    if (i % 7 === 0) {
      chart.append(svg("line", { x1: x, x2: x, y1: bottom, y2: bottom + 4, class: "axis-line" }));
      if (i % 14 === 0) chart.append(label(x, bottom + 16, `${day.slice(5)} (day ${i})`, width, "axis", 70));
    }
  });
  chart.append(svg("line", { x1: left, x2: width - 10, y1: bottom, y2: bottom, class: "axis-line" }),
    svg("text", { x: left, y: height - 4, class: "axis" }, "units sold per day; shaded: out of stock"));
  return chart;
}

function posteriorChart(d) {
  const width = 620;
  const height = 250;
  const chart = chartFrame(width, height,
    `Posterior of the daily rate of sale against the drop level ${num(d.drop_rate, 2)} and the keep level ${num(d.keep_rate, 2)}: P(drop) ${pct(d.p_drop, 1)}, P(keep) ${pct(d.p_keep, 1)}`);
  const hi = Math.max(d.keep_rate * 1.6, gammaQuantile(d.rate_shape, d.rate_rate, 3.1), 0.1);
  const n = 160;
  const xs = Array.from({ length: n + 1 }, (_, i) => (hi * i) / n);
  const ys = xs.map((x) => gammaPdf(x, d.rate_shape, d.rate_rate));
  const ymax = Math.max(...ys, 1e-12);
  const top = 24;
  const bottom = height - 56;
  const sx = (x) => 30 + (x / hi) * (width - 50);
  const sy = (y) => bottom - (y / ymax) * (bottom - top);
  const path = xs.map((x, i) => `${i ? "L" : "M"}${sx(x).toFixed(1)},${sy(ys[i]).toFixed(1)}`).join(" ");
  chart.append(
    svg("rect", { x: sx(0), y: top, width: Math.max(0, sx(d.drop_rate) - sx(0)), height: bottom - top, class: "zone-drop" }),
    svg("rect", { x: sx(d.keep_rate), y: top, width: Math.max(0, sx(hi) - sx(d.keep_rate)), height: bottom - top, class: "zone-keep" }),
    svg("path", { d: path, class: "density" }),
    svg("line", { x1: sx(d.drop_rate), x2: sx(d.drop_rate), y1: top - 6, y2: bottom, class: "level" }),
    svg("line", { x1: sx(d.keep_rate), x2: sx(d.keep_rate), y1: top - 6, y2: bottom, class: "level" }),
    label(sx(d.drop_rate) + 4, 14, `drop level ${num(d.drop_rate, 2)}`, width),
    label(sx(d.keep_rate) + 4, 14, `keep level ${num(d.keep_rate, 2)}`, width),
    svg("line", { x1: sx(0), x2: sx(hi), y1: bottom, y2: bottom, class: "axis-line" }));
  for (const t of ticks(hi, 5)) {
    if (t > hi) break;
    chart.append(svg("line", { x1: sx(t), x2: sx(t), y1: bottom, y2: bottom + 4, class: "axis-line" }),
      svg("text", { x: sx(t), y: bottom + 16, class: "axis", "text-anchor": "middle" }, num(t, t < 1 ? 2 : 1)));
  }
  // The probabilities sit under the axis, clear of the curve.
  chart.append(svg("text", { x: width / 2, y: bottom + 30, class: "axis", "text-anchor": "middle" }, "units sold per day"),
    svg("text", { x: 30, y: height - 6, class: "value" }, `P(drop) ${pct(d.p_drop, 1)} (shaded red)`),
    svg("text", { x: width - 20, y: height - 6, class: "value", "text-anchor": "end" }, `P(keep) ${pct(d.p_keep, 1)} (shaded green)`));
  return chart;
}

function projectionChart(d) {
  const width = 620;
  const chart = chartFrame(width, 72, `Projected sell-through: P10 ${pct(d.projected_st_p10)}, P50 ${pct(d.projected_st_p50)}, P90 ${pct(d.projected_st_p90)}`);
  const sx = (x) => 20 + Math.min(Math.max(x, 0), 1) * (width - 40);
  chart.append(
    svg("line", { x1: sx(0), x2: sx(1), y1: 34, y2: 34, class: "axis-line" }),
    svg("rect", { x: sx(d.projected_st_p10), y: 24, width: Math.max(2, sx(d.projected_st_p90) - sx(d.projected_st_p10)), height: 20, class: "band" }),
    svg("line", { x1: sx(d.projected_st_p50), x2: sx(d.projected_st_p50), y1: 19, y2: 49, class: "level" }),
    label(sx(d.projected_st_p50) + 4, 14, `P50 ${pct(d.projected_st_p50)} (band: P10–P90)`, width, "value", 180));
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    chart.append(svg("line", { x1: sx(t), x2: sx(t), y1: 49, y2: 54, class: "axis-line" }),
      svg("text", { x: sx(t), y: 68, class: "axis", "text-anchor": t === 0 ? "start" : t === 1 ? "end" : "middle" }, pct(t)));
  }
  return chart;
}

async function renderStyle(styleId, market) {
  const app = document.getElementById("app");
  app.replaceChildren(el("p", {}, "Loading…"));
  let style;
  try {
    style = await api("/v1/styles/" + encodeURIComponent(styleId));
  } catch (err) {
    app.replaceChildren(el("p", { class: "error", role: "alert" }, err.message), el("a", { href: "#/" }, "Back to the list"));
    return;
  }
  const markets = style.decisions.map((d) => d.market);
  const current = markets.includes(market) ? market : markets[0];
  const d = style.decisions.find((x) => x.market === current);
  const marketNav = el("nav", { class: "markets", "aria-label": "Markets" }, markets.map((m) =>
    el("a", { href: `#/style/${encodeURIComponent(styleId)}/${encodeURIComponent(m)}`, "aria-current": m === current ? "page" : false }, m === "ALL" ? "ALL (pooled)" : m)));
  const facts = el("dl", { class: "facts" },
    el("dt", {}, "Category"), el("dd", {}, style.category),
    el("dt", {}, "Launched"), el("dd", {}, isoDate(style.launch_at)),
    el("dt", {}, "Price / cost"), el("dd", {}, `${num(style.list_price, 2)} / ${num(style.unit_cost, 2)}`),
    el("dt", {}, "Lead time / MOQ"), el("dd", {}, `${style.lead_time_days} days / ${style.moq}`),
    el("dt", {}, "Model verdict"), el("dd", {}, el("span", { class: `badge ${d.model_verdict}` }, d.model_verdict)),
    el("dt", {}, "Verdict"), el("dd", { id: "effective-verdict" }, el("span", { class: `badge ${d.verdict}` }, d.verdict),
      d.override ? ` (override by ${d.override.user}: ${OVERRIDE_REASONS[d.override.reason] || d.override.reason})` : ""),
    el("dt", {}, "Why"), el("dd", {}, whyText(d)),
    el("dt", {}, "Confidence"), el("dd", {}, d.confidence === null ? "— (no call yet)" : pct(d.confidence, 1)),
    el("dt", {}, "Reorder"), el("dd", {}, `${d.reorder_units} units`),
    el("dt", {}, "Received / sold / returned / on hand"),
    el("dd", {}, `${d.units_received} / ${d.units_sold} / ${d.units_returned} / ${d.on_hand}`),
    el("dt", {}, "Sell-through"), el("dd", {}, `${pct(d.sell_through, 1)} (units sold net of returns over units received)`));
  const actions = el("div", { class: "actions" });
  if (state.me && state.me.may_override) {
    actions.append(el("button", { type: "button", "data-action": "override",
      onclick: () => openOverride(d, () => renderStyle(styleId, current)) }, `Override ${current}`));
    if (d.override) {
      actions.append(" ", el("button", { type: "button", "data-action": "revoke",
        onclick: () => revoke(d.override, styleId, () => renderStyle(styleId, current)) }, "Revoke override"));
    }
  }
  const history = el("table", { class: "list", id: "history" },
    el("caption", {}, "Override history"),
    el("thead", {}, el("tr", {}, ["When", "Market", "Verdict", "Reason", "Comment", "By", "Expires", "Revoked"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, style.overrides.length === 0
      ? el("tr", {}, el("td", { colspan: 8 }, "No overrides."))
      : style.overrides.map((o) => el("tr", {},
        el("td", {}, o.created_at.replace("T", " ").slice(0, 16)), el("td", {}, o.market), el("td", {}, o.verdict),
        el("td", {}, OVERRIDE_REASONS[o.reason] || o.reason), el("td", {}, o.comment || ""), el("td", {}, o.user),
        el("td", {}, o.expires_at ? o.expires_at.slice(0, 16).replace("T", " ") : ""),
        el("td", {}, o.revoked_at ? `${o.revoked_at.slice(0, 16).replace("T", " ")} by ${o.revoked_by}` : "")))));
  app.replaceChildren(
    el("p", {}, el("a", { href: "#/" }, "← Back to the list")),
    el("h1", {}, `${style.style_id} · ${style.name || ""}`),
    marketNav, facts, actions,
    el("section", {}, el("h2", {}, "Funnel"), funnelChart(d)),
    el("section", {}, el("h2", {}, "Daily sales"), dailyChart(style.daily, current, style.launch_at)),
    el("section", {}, el("h2", {}, "Rate of sale: posterior against the keep and drop levels"), posteriorChart(d)),
    el("section", {}, el("h2", {}, "Projected sell-through over the planned life"), projectionChart(d)),
    el("section", {}, history));
  app.focus();
}

// ---------- exceptions queue ----------

/// What needs a person this morning: reorders awaiting approval, calls that flipped
/// since the last list, and the run's data warnings.
async function renderQueue({ refresh = false } = {}) {
  const app = document.getElementById("app");
  // After an approval the old queue stays in view until the new one is in.
  if (!refresh) app.replaceChildren(el("h1", {}, "Exceptions"), el("p", {}, "Loading…"));
  const proposed = (await api("/v1/reorders?status=proposed")).items;
  const may = state.me.may_override;
  const decide = async (r, decision, button) => {
    const body = { run_id: r.run_id, style_id: r.style_id, market: r.market, decision };
    if (decision === "reject") {
      const why = window.prompt(`Why reject the reorder of ${r.units} units of ${r.style_id} (${r.market})?`);
      if (!why || !why.trim()) return;
      body.comment = why.trim();
    }
    button.disabled = true;
    try {
      await api("/v1/reorders", { method: "POST", body });
      await renderQueue({ refresh: true });
    } catch (err) {
      button.disabled = false;
      document.getElementById("queue-error").textContent = "Could not record it: " + err.message;
    }
  };
  const reorderRows = proposed.map((r) => {
    const actions = [];
    if (may) {
      const approve = el("button", { type: "button", class: "small", "data-action": "approve" }, "Approve");
      approve.addEventListener("click", () => decide(r, "approve", approve));
      const reject = el("button", { type: "button", class: "small", "data-action": "reject" }, "Reject");
      reject.addEventListener("click", () => decide(r, "reject", reject));
      actions.push(approve, " ", reject);
    }
    return el("tr", { "data-reorder": r.reorder_id },
      el("td", {}, el("a", { href: `#/style/${encodeURIComponent(r.style_id)}/${encodeURIComponent(r.market)}` }, r.style_id)),
      el("td", {}, r.market), el("td", {}, r.category),
      el("td", { class: "num" }, String(r.units)),
      el("td", { class: "num" }, pct(r.p_keep)),
      el("td", { class: "row-actions" }, ...actions));
  });
  const flips = state.rows.filter((r) => r.previous_verdict && r.previous_verdict !== r.model_verdict);
  const flipRows = flips.map((r) => el("tr", {},
    el("td", {}, el("a", { href: `#/style/${encodeURIComponent(r.style_id)}/${encodeURIComponent(r.market)}` }, r.style_id)),
    el("td", {}, r.market),
    el("td", {}, `${r.previous_verdict} → ${r.model_verdict}`),
    el("td", { class: "job-detail" }, reasonWords(r.reasons))));
  const warnings = (state.run && state.run.warnings) || [];
  const table = (id, caption, heads, rows) => el("div", { class: "scroll" },
    el("table", { class: "list", id },
      el("caption", {}, caption),
      el("thead", {}, el("tr", {}, ...heads.map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, ...rows)));
  app.replaceChildren(el("h1", {}, "Exceptions"),
    el("p", {}, el("a", { href: "#/" }, "← Back to the list")),
    el("p", { class: "error", role: "alert", id: "queue-error" }),
    el("h2", {}, "Reorders awaiting approval"),
    table("reorders", `${proposed.length} reorders proposed by the published run`,
      ["style", "market", "category", "units", "P(keep)", ""], reorderRows),
    el("h2", {}, "Calls that flipped since the last list"),
    table("flips", `${flips.length} rows`, ["style", "market", "call", "why"], flipRows),
    el("h2", {}, "Data warnings"),
    warnings.length ? el("ul", { id: "warnings" }, ...warnings.map((w) => el("li", {}, w)))
      : el("p", { id: "warnings" }, "None in this run."));
  app.focus();
}

// ---------- jobs ----------

const JOB_KINDS = { ingest: "ingest a file", rollup: "refresh the rollup", decide: "decision run" };

function duration(seconds) {
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

/// The daily loop's jobs, newest first; a failed job and a late one (past twice its
/// kind's median) stand out, and say so in words.
async function renderJobs() {
  const app = document.getElementById("app");
  app.replaceChildren(el("h1", {}, "Jobs"), el("p", {}, "Loading…"));
  const page = await api("/v1/jobs?limit=200");
  const failed = page.jobs.filter((j) => j.status === "failed").length;
  const late = page.jobs.filter((j) => j.late).length;
  const rows = page.jobs.map((j) => {
    const status = [el("span", { class: "badge " + j.status }, j.status)];
    if (j.late) status.push(" ", el("span", { class: "badge late" }, "late"));
    const detail = j.error || j.note || "";
    return el("tr", { class: j.status === "failed" ? "job-failed" : j.late ? "job-late" : "", "data-job": j.job_id },
      el("td", {}, JOB_KINDS[j.kind] || j.kind),
      el("td", { class: "job-status" }, ...status),
      el("td", {}, j.trigger),
      el("td", {}, j.started_at.replace("T", " ").slice(0, 19)),
      el("td", { class: "num" }, duration(j.seconds)),
      el("td", { class: "num" }, j.rows === null ? "" : String(j.rows)),
      el("td", { class: "num" }, j.rejects === null ? "" : String(j.rejects)),
      el("td", { class: "job-detail" }, j.source ? `${j.source}: ${detail}` : detail));
  });
  const table = el("table", { class: "list", id: "jobs" },
    el("caption", {}, `${page.jobs.length} most recent jobs: ${failed} failed, ${late} late`),
    el("thead", {}, el("tr", {}, ...["job", "status", "started by", "started (UTC)", "took", "rows", "rejected", "file, note or error"]
      .map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, ...rows));
  app.replaceChildren(el("h1", {}, "Jobs"),
    el("p", {}, el("a", { href: "#/" }, "← Back to the list")),
    el("div", { class: "scroll" }, table));
  app.focus();
}

// ---------- routing ----------

function route() {
  if (!state.me) return;
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (parts[0] === "style" && parts[1]) {
    renderStyle(parts[1], parts[2] || "ALL");
  } else if (parts[0] === "queue") {
    renderQueue();
  } else if (parts[0] === "jobs" && state.me.may_operate) {
    renderJobs();
  } else {
    renderList();
  }
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", async () => {
  document.getElementById("sign-out").addEventListener("click", () => signOut("Signed out."));
  if (!sessionStorage.getItem(TOKEN_KEY)) {
    renderSignIn();
    return;
  }
  try {
    await start();
  } catch (err) {
    signOut(err.status === 401 ? "Sign in again." : "Could not load: " + err.message);
  }
});
