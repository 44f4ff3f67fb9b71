-- Each style's launch funnel up to as_of, per market and pooled (market = 'ALL'):
-- activity inside the style's window [launch_at, launch_at + planned life], in-stock
-- exposure, stock, and the early-window and matured-order counts the decision uses.
WITH stock_levels AS ({stock_levels}),
stock_spells AS ({stock_spells}),
catalog AS (
    SELECT style_id, category, launch_at, list_price, unit_cost, lead_time_days, moq,
           LEAST({as_of}, launch_at + INTERVAL '{window_seconds} seconds') AS window_end,
           LEAST({as_of}, launch_at + INTERVAL '{early_seconds} seconds') AS early_end
    FROM styles
    WHERE launch_at <= {as_of}
),
windowed AS (
    SELECT e.style_id, e.market, e.event_type, e.event_time, e.quantity, e.price,
           e.user_id, e.order_id, e.return_reason, c.early_end
    FROM events e
    JOIN catalog c ON e.style_id = c.style_id
    WHERE e.event_date <= {as_of_date} AND e.event_time <= {as_of} AND e.quantity > 0
      AND e.event_time >= c.launch_at AND e.event_time <= c.window_end
),
activity AS (
    SELECT style_id, market,
           SUM(CASE WHEN event_type = 'view' THEN 1 ELSE 0 END) AS views,
           SUM(CASE WHEN event_type = 'cart' THEN 1 ELSE 0 END) AS carts,
           SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS purchases,
           SUM(CASE WHEN event_type = 'purchase' THEN quantity ELSE 0 END) AS units_sold,
           SUM(CASE WHEN event_type = 'return' THEN quantity ELSE 0 END) AS units_returned,
           SUM(CASE WHEN event_type = 'purchase' THEN quantity * COALESCE(price, 0.0) ELSE 0.0 END)
               AS revenue,
           SUM(CASE WHEN event_type = 'purchase' AND event_time <= early_end THEN quantity ELSE 0 END)
               AS early_units
    FROM windowed
    GROUP BY style_id, market
),
buyers AS (
    SELECT style_id, market, COUNT(DISTINCT user_id) AS buyers
    FROM windowed WHERE event_type = 'purchase'
    GROUP BY style_id, market
),
pooled_buyers AS (
    SELECT style_id, COUNT(DISTINCT user_id) AS buyers
    FROM windowed WHERE event_type = 'purchase'
    GROUP BY style_id
),
-- Returns lag purchases, so a unit bought d days ago counts as min(1, d / maturity) of
-- a unit whose return could have arrived ("maturity-weighted units"); returns for
-- reasons other than size are matched to their purchase by order. The return test can
-- then act before a style's first orders are a full maturity period old.
non_size_returns AS (
    SELECT style_id, order_id, SUM(quantity) AS returned
    FROM windowed
    WHERE event_type = 'return' AND order_id IS NOT NULL
      AND COALESCE(return_reason, '') NOT IN ('size_small', 'size_large')
    GROUP BY style_id, order_id
),
matured AS (
    SELECT p.style_id, p.market,
           CAST(SUM(CAST(p.quantity AS BIGINT)
                    * LEAST({maturity_us}, {as_of_us} - arrow_cast(p.event_time, 'Int64')))
                AS DOUBLE) / {maturity_us} AS matured_units,
           SUM(LEAST(COALESCE(r.returned, 0), p.quantity)) AS matured_non_size_returns
    FROM windowed p
    LEFT JOIN non_size_returns r ON p.style_id = r.style_id AND p.order_id = r.order_id
    WHERE p.event_type = 'purchase'
    GROUP BY p.style_id, p.market
),
-- In-stock time in integer microseconds: integer sums are exact in any order, so
-- parallel aggregation gives bit-identical results run after run.
pooled_matured AS (
    SELECT p.style_id,
           CAST(SUM(CAST(p.quantity AS BIGINT)
                    * LEAST({maturity_us}, {as_of_us} - arrow_cast(p.event_time, 'Int64')))
                AS DOUBLE) / {maturity_us} AS matured_units
    FROM windowed p
    WHERE p.event_type = 'purchase'
    GROUP BY p.style_id
),
exposure AS (
    SELECT sp.style_id, sp.market,
           SUM(GREATEST(0, arrow_cast(LEAST(sp.in_stock_to, c.window_end), 'Int64')
                           - arrow_cast(GREATEST(sp.in_stock_from, c.launch_at), 'Int64')))
               AS exposure_us,
           SUM(GREATEST(0, arrow_cast(LEAST(sp.in_stock_to, c.early_end), 'Int64')
                           - arrow_cast(GREATEST(sp.in_stock_from, c.launch_at), 'Int64')))
               AS early_exposure_us
    FROM stock_spells sp
    JOIN catalog c ON sp.style_id = c.style_id
    GROUP BY sp.style_id, sp.market
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
receipts AS (
    SELECT style_id, market,
           SUM(CAST(units AS BIGINT)) AS units_received,
           SUM(CASE WHEN batch = 0 THEN CAST(units AS BIGINT) ELSE 0 END) AS test_batch_units
    FROM stock_receipts
    WHERE received_at <= {as_of}
    GROUP BY style_id, market
),
stock AS (
    SELECT style_id, market, SUM(delta) AS on_hand
    FROM stock_levels
    GROUP BY style_id, market
),
market_rows AS (
    SELECT c.style_id, r.market, c.category, c.launch_at,
           CAST({as_of_us} - arrow_cast(c.launch_at, 'Int64') AS DOUBLE) / {day_us} AS days_live,
           COALESCE(x.exposure_us, 0) AS exposure_us,
           COALESCE(x.early_exposure_us, 0) AS early_exposure_us,
           COALESCE(s.on_hand, 0) <= 0 AS sold_out,
           COALESCE(a.views, 0) AS views,
           COALESCE(v.views_in_stock, 0) AS views_in_stock,
           COALESCE(a.carts, 0) AS carts,
           COALESCE(a.purchases, 0) AS purchases,
           COALESCE(a.units_sold, 0) AS units_sold,
           COALESCE(a.units_returned, 0) AS units_returned,
           COALESCE(a.revenue, 0.0) AS revenue,
           COALESCE(b.buyers, 0) AS buyers,
           COALESCE(a.early_units, 0) AS early_units,
           COALESCE(m.matured_units, 0.0) AS matured_units,
           COALESCE(m.matured_non_size_returns, 0) AS matured_non_size_returns,
           r.units_received, r.test_batch_units,
           COALESCE(s.on_hand, 0) AS on_hand,
           c.list_price, c.unit_cost, c.lead_time_days, c.moq
    FROM receipts r
    JOIN catalog c ON r.style_id = c.style_id
    LEFT JOIN activity a ON a.style_id = r.style_id AND a.market = r.market
    LEFT JOIN buyers b ON b.style_id = r.style_id AND b.market = r.market
    LEFT JOIN matured m ON m.style_id = r.style_id AND m.market = r.market
    LEFT JOIN exposure x ON x.style_id = r.style_id AND x.market = r.market
    LEFT JOIN in_stock_views v ON v.style_id = r.style_id AND v.market = r.market
    LEFT JOIN stock s ON s.style_id = r.style_id AND s.market = r.market
)
SELECT style_id, market, category, launch_at, days_live,
       CAST(exposure_us AS DOUBLE) / {day_us} AS exposure_days,
       CAST(early_exposure_us AS DOUBLE) / {day_us} AS early_exposure_days,
       sold_out, views, views_in_stock, carts, purchases, units_sold, units_returned, revenue,
       buyers, early_units, matured_units, matured_non_size_returns, units_received,
       test_batch_units, on_hand, list_price, unit_cost, lead_time_days, moq
FROM market_rows
UNION ALL
-- The pooled row: counts add up; exposure is the receipt-weighted mean of the markets'.
SELECT m.style_id, 'ALL' AS market, MIN(m.category), MIN(m.launch_at), MIN(m.days_live),
       CAST(SUM(m.exposure_us * m.units_received) AS DOUBLE)
           / NULLIF(SUM(m.units_received), 0) / {day_us},
       CAST(SUM(m.early_exposure_us * m.units_received) AS DOUBLE)
           / NULLIF(SUM(m.units_received), 0) / {day_us},
       SUM(m.on_hand) <= 0,
       SUM(m.views), SUM(m.views_in_stock), SUM(m.carts), SUM(m.purchases),
       SUM(m.units_sold), SUM(m.units_returned), SUM(m.revenue),
       MIN(COALESCE(pb.buyers, 0)),
       SUM(m.early_units), MIN(pm.matured_units), SUM(m.matured_non_size_returns),
       SUM(m.units_received), SUM(m.test_batch_units), SUM(m.on_hand),
       MIN(m.list_price), MIN(m.unit_cost), MIN(m.lead_time_days), MIN(m.moq)
FROM market_rows m
LEFT JOIN pooled_buyers pb ON pb.style_id = m.style_id
LEFT JOIN pooled_matured pm ON pm.style_id = m.style_id
GROUP BY m.style_id
