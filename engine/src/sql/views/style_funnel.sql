-- Each style's launch funnel up to as_of, per market and pooled (market = 'ALL'):
-- activity inside the style's window [launch_at, launch_at + planned life], in-stock
-- exposure, stock, and the early-window and matured-order counts the decision uses.
--
-- Days before the first raw day come from the daily rollup (its `window_` columns);
-- events from that day on are read raw. Over all history no rollup rows are used and
-- raw events start at the epoch; a decision run starts them at its own day. Both give
-- the same numbers, and a run's cost follows one day of events, not the season.
WITH stock_levels AS ({stock_levels}),
stock_spells AS ({stock_spells}),
-- Each category's demand decay (per microsecond of age): demand at age a is the launch
-- rate times exp(−decay · a), so in-stock time is weighed by the curve ("decayed
-- exposure"), a day at a time at the day's midday age.
curves AS ({decay_curves}),
catalog AS (
    SELECT s.style_id, s.category, s.launch_at, s.list_price, s.unit_cost,
           s.lead_time_days, s.moq,
           COALESCE(cv.decay_per_us, {default_decay_per_us}) AS decay_per_us,
           LEAST({until}, s.launch_at + INTERVAL '{window_seconds} seconds') AS window_end,
           LEAST({until}, s.launch_at + INTERVAL '{early_seconds} seconds') AS early_end
    FROM styles s
    LEFT JOIN curves cv ON s.category = cv.category
    WHERE s.launch_at <= {until}
),
-- Returns lag purchases, so a unit bought d days ago counts as min(1, d / maturity) of
-- a unit whose return could have arrived ("maturity-weighted units"), summed here in
-- unit-microseconds. A past day is wholly matured, wholly within the maturity period
-- (its units' exact ages follow from window_unit_time_us), or the one day that holds
-- as_of − maturity, whose purchases are read raw; when that instant is its day's last
-- microsecond (as_of at the end of a day) the day is wholly matured and none is read.
past AS (
    SELECT p.style_id, p.market,
           SUM(window_views) AS views,
           SUM(window_views_in_stock) AS views_in_stock,
           SUM(window_carts) AS carts,
           SUM(window_purchases) AS purchases,
           SUM(window_units) AS units_sold,
           SUM(window_returns) AS units_returned,
           SUM(CAST(round(window_revenue * 1000000) AS BIGINT)) AS revenue_micros,
           SUM(window_early_units) AS early_units,
           SUM(window_non_size_returns) AS non_size_returns,
           SUM(window_exposure_us) AS exposure_us,
           SUM(window_early_exposure_us) AS early_exposure_us,
           SUM(CASE WHEN day < {matured_before} THEN window_units * {maturity_us}
                    WHEN day > {maturity_date}
                    THEN window_units * ({until_us}
                                         - arrow_cast(arrow_cast(day, {timestamp_type}), 'Int64'))
                         - window_unit_time_us
                    ELSE 0 END) AS matured_unit_us,
           SUM(CAST(round(CAST(window_exposure_us AS DOUBLE)
                          * exp(-c.decay_per_us * GREATEST(0,
                                arrow_cast(arrow_cast(day, {timestamp_type}), 'Int64')
                                + {half_day_us} - arrow_cast(c.launch_at, 'Int64'))))
                    AS BIGINT)) AS decayed_exposure_us,
           SUM(CAST(round(CAST(window_early_exposure_us AS DOUBLE)
                          * exp(-c.decay_per_us * GREATEST(0,
                                arrow_cast(arrow_cast(day, {timestamp_type}), 'Int64')
                                + {half_day_us} - arrow_cast(c.launch_at, 'Int64'))))
                    AS BIGINT)) AS early_decayed_exposure_us
    FROM ({past}) p
    JOIN catalog c ON p.style_id = c.style_id
    GROUP BY p.style_id, p.market
),
maturity_day AS (
    SELECT e.style_id, e.market,
           SUM(CAST(e.quantity AS BIGINT)
               * LEAST({maturity_us}, {until_us} - arrow_cast(e.event_time, 'Int64')))
               AS matured_unit_us
    FROM events e
    JOIN catalog c ON e.style_id = c.style_id
    WHERE e.event_date = {maturity_date} AND {maturity_date} < {from_date}
      AND {maturity_date} >= {matured_before}
      AND e.event_type = 'purchase' AND e.quantity > 0
      AND e.event_time >= c.launch_at AND e.event_time <= c.window_end
    GROUP BY e.style_id, e.market
),
windowed AS (
    SELECT e.style_id, e.market, e.event_type, e.event_time, e.quantity, e.price,
           e.return_reason, c.early_end
    FROM events e
    JOIN catalog c ON e.style_id = c.style_id
    WHERE e.event_date >= {from_date} AND e.event_date <= {until_date}
      AND e.event_time >= {from} AND e.event_time <= {until} AND e.quantity > 0
      AND e.event_time >= c.launch_at AND e.event_time <= c.window_end
),
recent AS (
    SELECT style_id, market,
           SUM(CASE WHEN event_type = 'view' THEN 1 ELSE 0 END) AS views,
           SUM(CASE WHEN event_type = 'cart' THEN 1 ELSE 0 END) AS carts,
           SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS purchases,
           SUM(CASE WHEN event_type = 'purchase' THEN quantity ELSE 0 END) AS units_sold,
           SUM(CASE WHEN event_type = 'return' THEN quantity ELSE 0 END) AS units_returned,
           -- Money in integer micro-units: exact sums, the same in any order.
           SUM(CASE WHEN event_type = 'purchase'
                    THEN CAST(round(quantity * COALESCE(price, 0.0) * 1000000) AS BIGINT)
                    ELSE 0 END) AS revenue_micros,
           SUM(CASE WHEN event_type = 'purchase' AND event_time <= early_end THEN quantity ELSE 0 END)
               AS early_units,
           -- Returns for reasons other than size count against the style.
           SUM(CASE WHEN event_type = 'return'
                     AND COALESCE(return_reason, '') NOT IN ('size_small', 'size_large')
                    THEN quantity ELSE 0 END) AS non_size_returns,
           SUM(CASE WHEN event_type = 'purchase'
                    THEN CAST(quantity AS BIGINT)
                         * LEAST({maturity_us}, {until_us} - arrow_cast(event_time, 'Int64'))
                    ELSE 0 END) AS matured_unit_us
    FROM windowed
    GROUP BY style_id, market
),
-- In-stock time in integer microseconds: integer sums are exact in any order, so
-- parallel aggregation gives bit-identical results run after run. Spells are cut into
-- days so the decayed exposure is weighed as the rollup weighs it, a day at a time.
spell_days AS (
    SELECT style_id, market, in_stock_from, in_stock_to,
           CAST(unnest(generate_series(CAST(in_stock_from AS DATE), CAST(in_stock_to AS DATE),
                                       INTERVAL '1 day')) AS DATE) AS day
    FROM stock_spells
),
spell_day_exposure AS (
    SELECT sd.style_id, sd.market, sd.day, c.decay_per_us,
           GREATEST(0, arrow_cast(arrow_cast(sd.day, {timestamp_type}), 'Int64') + {half_day_us}
                       - arrow_cast(c.launch_at, 'Int64')) AS age_us,
           SUM(GREATEST(0,
               arrow_cast(LEAST(sd.in_stock_to, c.window_end,
                                arrow_cast(sd.day, {timestamp_type}) + INTERVAL '1 day'), 'Int64')
               - arrow_cast(GREATEST(sd.in_stock_from, c.launch_at,
                                     arrow_cast(sd.day, {timestamp_type})), 'Int64')))
               AS exposure_us,
           SUM(GREATEST(0,
               arrow_cast(LEAST(sd.in_stock_to, c.early_end,
                                arrow_cast(sd.day, {timestamp_type}) + INTERVAL '1 day'), 'Int64')
               - arrow_cast(GREATEST(sd.in_stock_from, c.launch_at,
                                     arrow_cast(sd.day, {timestamp_type})), 'Int64')))
               AS early_exposure_us
    FROM spell_days sd
    JOIN catalog c ON sd.style_id = c.style_id
    GROUP BY sd.style_id, sd.market, sd.day, c.decay_per_us, c.launch_at
),
exposure AS (
    SELECT style_id, market,
           SUM(exposure_us) AS exposure_us,
           SUM(early_exposure_us) AS early_exposure_us,
           SUM(CAST(round(CAST(exposure_us AS DOUBLE) * exp(-decay_per_us * age_us)) AS BIGINT))
               AS decayed_exposure_us,
           SUM(CAST(round(CAST(early_exposure_us AS DOUBLE) * exp(-decay_per_us * age_us))
                    AS BIGINT)) AS early_decayed_exposure_us
    FROM spell_day_exposure
    GROUP BY style_id, market
),
in_stock_views AS (
    SELECT w.style_id, w.market, COUNT(*) AS views_in_stock
    FROM windowed w
    JOIN stock_spells sp
      ON w.style_id = sp.style_id AND w.market = sp.market
     AND w.event_time >= sp.in_stock_from AND w.event_time < sp.in_stock_to
    WHERE w.event_type = 'view'
    GROUP BY w.style_id, w.market
),
-- Received so far, and on order: receipts recorded for later than as_of but due within
-- one lead time of it (placed by then).
receipts AS (
    SELECT r.style_id, r.market,
           SUM(CASE WHEN r.received_at <= {until} THEN CAST(r.units AS BIGINT) ELSE 0 END)
               AS units_received,
           SUM(CASE WHEN r.received_at <= {until} AND r.batch = 0
                    THEN CAST(r.units AS BIGINT) ELSE 0 END) AS test_batch_units,
           SUM(CASE WHEN r.received_at > {until}
                     AND arrow_cast(r.received_at, 'Int64')
                         <= {until_us} + CAST(c.lead_time_days AS BIGINT) * {day_us_int}
                    THEN CAST(r.units AS BIGINT) ELSE 0 END) AS open_order_units
    FROM stock_receipts r
    JOIN catalog c ON r.style_id = c.style_id
    GROUP BY r.style_id, r.market
    HAVING SUM(CASE WHEN r.received_at <= {until} THEN 1 ELSE 0 END) > 0
),
stock AS (
    SELECT style_id, market, SUM(delta) AS on_hand
    FROM stock_levels
    GROUP BY style_id, market
),
market_rows AS (
    SELECT c.style_id, r.market, c.category, c.launch_at,
           CAST({until_us} - arrow_cast(c.launch_at, 'Int64') AS DOUBLE) / {day_us} AS days_live,
           COALESCE(p.exposure_us, 0) + COALESCE(x.exposure_us, 0) AS exposure_us,
           COALESCE(p.early_exposure_us, 0) + COALESCE(x.early_exposure_us, 0)
               AS early_exposure_us,
           COALESCE(p.decayed_exposure_us, 0) + COALESCE(x.decayed_exposure_us, 0)
               AS decayed_exposure_us,
           COALESCE(p.early_decayed_exposure_us, 0) + COALESCE(x.early_decayed_exposure_us, 0)
               AS early_decayed_exposure_us,
           COALESCE(s.on_hand, 0) <= 0 AS sold_out,
           COALESCE(p.views, 0) + COALESCE(a.views, 0) AS views,
           COALESCE(p.views_in_stock, 0) + COALESCE(v.views_in_stock, 0) AS views_in_stock,
           COALESCE(p.carts, 0) + COALESCE(a.carts, 0) AS carts,
           COALESCE(p.purchases, 0) + COALESCE(a.purchases, 0) AS purchases,
           COALESCE(p.units_sold, 0) + COALESCE(a.units_sold, 0) AS units_sold,
           COALESCE(p.units_returned, 0) + COALESCE(a.units_returned, 0) AS units_returned,
           COALESCE(p.revenue_micros, 0) + COALESCE(a.revenue_micros, 0) AS revenue_micros,
           COALESCE(p.early_units, 0) + COALESCE(a.early_units, 0) AS early_units,
           COALESCE(p.matured_unit_us, 0) + COALESCE(md.matured_unit_us, 0)
               + COALESCE(a.matured_unit_us, 0) AS matured_unit_us,
           COALESCE(p.non_size_returns, 0) + COALESCE(a.non_size_returns, 0)
               AS matured_non_size_returns,
           r.units_received, r.test_batch_units, r.open_order_units,
           COALESCE(s.on_hand, 0) AS on_hand,
           c.list_price, c.unit_cost, c.lead_time_days, c.moq
    FROM receipts r
    JOIN catalog c ON r.style_id = c.style_id
    LEFT JOIN past p ON p.style_id = r.style_id AND p.market = r.market
    LEFT JOIN maturity_day md ON md.style_id = r.style_id AND md.market = r.market
    LEFT JOIN recent a ON a.style_id = r.style_id AND a.market = r.market
    LEFT JOIN exposure x ON x.style_id = r.style_id AND x.market = r.market
    LEFT JOIN in_stock_views v ON v.style_id = r.style_id AND v.market = r.market
    LEFT JOIN stock s ON s.style_id = r.style_id AND s.market = r.market
)
