-- The daily rollup: per style × market × day of the days asked for, the day's
-- activity and in-stock time, plus the pieces of the launch funnel that add up over
-- days (the `window_` columns: only events inside the style's window
-- [launch_at, launch_at + planned life]). A decision run sums these over past days and
-- reads raw events only from its own day on, so its cost follows new data, not history.
-- Stock carries from day to day: the opening stock is each pair's at the first day.
WITH stock_levels AS ({stock_levels}),
stock_spells AS ({stock_spells}),
catalog AS (
    SELECT style_id, launch_at,
           launch_at + INTERVAL '{window_seconds} seconds' AS window_end,
           launch_at + INTERVAL '{early_seconds} seconds' AS early_end
    FROM styles
),
calendar AS (
    SELECT day, arrow_cast(day, {timestamp_type}) AS day_start,
           arrow_cast(day, {timestamp_type}) + INTERVAL '1 day' AS day_end
    -- The array form unnested, not the generate_series table function: a table
    -- function cannot be shipped to Ballista's executors.
    FROM (SELECT CAST(unnest(generate_series({from_date}, {until_date} - INTERVAL '1 day',
                                             INTERVAL '1 day')) AS DATE) AS day) d
),
day_events AS (
    SELECT e.style_id, e.market, e.event_date AS day, e.event_type, e.event_time,
           e.quantity, e.price, e.return_reason,
           COALESCE(e.event_time >= c.launch_at AND e.event_time <= c.window_end, false)
               AS in_window,
           COALESCE(e.event_time <= c.early_end, false) AS early,
           arrow_cast(e.event_time, 'Int64')
               - arrow_cast(arrow_cast(e.event_date, {timestamp_type}), 'Int64')
               AS since_day_start_us
    FROM events e
    LEFT JOIN catalog c ON e.style_id = c.style_id
    WHERE e.event_date >= {from_date} AND e.event_date < {until_date} AND e.quantity > 0
),
activity AS (
    SELECT style_id, market, day,
           SUM(CASE WHEN event_type = 'view' THEN 1 ELSE 0 END) AS views,
           SUM(CASE WHEN event_type = 'cart' THEN 1 ELSE 0 END) AS carts,
           SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS purchases,
           SUM(CASE WHEN event_type = 'purchase' THEN quantity ELSE 0 END) AS units,
           SUM(CASE WHEN event_type = 'return' THEN quantity ELSE 0 END) AS returns,
           -- Money in integer micro-units: exact sums, the same in any order.
           CAST(SUM(CASE WHEN event_type = 'purchase'
                         THEN CAST(round(quantity * COALESCE(price, 0.0) * 1000000) AS BIGINT)
                         ELSE 0 END) AS DOUBLE) / 1000000.0 AS revenue,
           SUM(CASE WHEN event_type = 'return'
                     AND COALESCE(return_reason, '') NOT IN ('damaged', 'quality')
                    THEN quantity ELSE 0 END) AS restocked_units,
           SUM(CASE WHEN in_window AND event_type = 'view' THEN 1 ELSE 0 END) AS window_views,
           SUM(CASE WHEN in_window AND event_type = 'cart' THEN 1 ELSE 0 END) AS window_carts,
           SUM(CASE WHEN in_window AND event_type = 'purchase' THEN 1 ELSE 0 END)
               AS window_purchases,
           SUM(CASE WHEN in_window AND event_type = 'purchase' THEN quantity ELSE 0 END)
               AS window_units,
           SUM(CASE WHEN in_window AND event_type = 'return' THEN quantity ELSE 0 END)
               AS window_returns,
           CAST(SUM(CASE WHEN in_window AND event_type = 'purchase'
                         THEN CAST(round(quantity * COALESCE(price, 0.0) * 1000000) AS BIGINT)
                         ELSE 0 END) AS DOUBLE) / 1000000.0 AS window_revenue,
           SUM(CASE WHEN in_window AND early AND event_type = 'purchase' THEN quantity ELSE 0 END)
               AS window_early_units,
           SUM(CASE WHEN in_window AND event_type = 'return'
                     AND COALESCE(return_reason, '') NOT IN ('size_small', 'size_large')
                    THEN quantity ELSE 0 END) AS window_non_size_returns,
           -- Σ units × time since midnight: with the day, the exact age of every unit
           -- sold that day, for the maturity weighting of the return test.
           SUM(CASE WHEN in_window AND event_type = 'purchase'
                    THEN CAST(quantity AS BIGINT) * since_day_start_us ELSE 0 END)
               AS window_unit_time_us
    FROM day_events
    GROUP BY style_id, market, day
),
in_stock_views AS (
    SELECT v.style_id, v.market, v.day, COUNT(*) AS window_views_in_stock
    FROM day_events v
    JOIN stock_spells sp
      ON v.style_id = sp.style_id AND v.market = sp.market
     AND v.event_time >= sp.in_stock_from AND v.event_time < sp.in_stock_to
    WHERE v.event_type = 'view' AND v.in_window
    GROUP BY v.style_id, v.market, v.day
),
-- In-stock time in integer microseconds: integer sums are exact in any order.
exposure AS (
    SELECT sp.style_id, sp.market, c.day,
           SUM(arrow_cast(LEAST(sp.in_stock_to, c.day_end), 'Int64')
               - arrow_cast(GREATEST(sp.in_stock_from, c.day_start), 'Int64')) AS exposure_us,
           SUM(CASE WHEN k.launch_at IS NULL THEN 0 ELSE GREATEST(0,
               arrow_cast(LEAST(sp.in_stock_to, c.day_end, k.window_end), 'Int64')
               - arrow_cast(GREATEST(sp.in_stock_from, c.day_start, k.launch_at), 'Int64'))
               END) AS window_exposure_us,
           SUM(CASE WHEN k.launch_at IS NULL THEN 0 ELSE GREATEST(0,
               arrow_cast(LEAST(sp.in_stock_to, c.day_end, k.early_end), 'Int64')
               - arrow_cast(GREATEST(sp.in_stock_from, c.day_start, k.launch_at), 'Int64'))
               END) AS window_early_exposure_us
    FROM stock_spells sp
    JOIN calendar c ON c.day_start < sp.in_stock_to AND c.day_end > sp.in_stock_from
    LEFT JOIN catalog k ON k.style_id = sp.style_id
    GROUP BY sp.style_id, sp.market, c.day
),
-- Events a decision cannot use, counted so a run can warn about them without reading
-- raw history.
quality AS (
    SELECT e.style_id, e.market, e.event_date AS day,
           SUM(CASE WHEN c.style_id IS NULL THEN 1 ELSE 0 END) AS unknown_style_events,
           SUM(CASE WHEN e.quantity IS NULL OR e.quantity <= 0 THEN 1 ELSE 0 END)
               AS bad_quantity_events,
           SUM(CASE WHEN e.event_type IN ('view', 'cart', 'remove_from_cart', 'purchase', 'return')
                    THEN 0 ELSE 1 END) AS unknown_type_events
    FROM events e
    LEFT JOIN catalog c ON e.style_id = c.style_id
    WHERE e.event_date >= {from_date} AND e.event_date < {until_date}
    GROUP BY e.style_id, e.market, e.event_date
    HAVING SUM(CASE WHEN c.style_id IS NULL OR e.quantity IS NULL OR e.quantity <= 0
                     OR e.event_type NOT IN ('view', 'cart', 'remove_from_cart', 'purchase', 'return')
                    THEN 1 ELSE 0 END) > 0
),
keys AS (
    SELECT style_id, market, day FROM activity
    UNION
    SELECT style_id, market, day FROM exposure
    UNION
    SELECT style_id, market, day FROM quality
)
SELECT k.style_id, k.market, k.day,
       COALESCE(a.views, 0) AS views,
       COALESCE(a.carts, 0) AS carts,
       COALESCE(a.purchases, 0) AS purchases,
       COALESCE(a.units, 0) AS units,
       COALESCE(a.returns, 0) AS returns,
       COALESCE(a.revenue, 0.0) AS revenue,
       CAST(COALESCE(x.exposure_us, 0) AS DOUBLE) / 3600000000.0 AS exposure_hours,
       COALESCE(a.restocked_units, 0) AS restocked_units,
       COALESCE(a.window_views, 0) AS window_views,
       COALESCE(v.window_views_in_stock, 0) AS window_views_in_stock,
       COALESCE(a.window_carts, 0) AS window_carts,
       COALESCE(a.window_purchases, 0) AS window_purchases,
       COALESCE(a.window_units, 0) AS window_units,
       COALESCE(a.window_returns, 0) AS window_returns,
       COALESCE(a.window_revenue, 0.0) AS window_revenue,
       COALESCE(a.window_early_units, 0) AS window_early_units,
       COALESCE(a.window_non_size_returns, 0) AS window_non_size_returns,
       COALESCE(a.window_unit_time_us, 0) AS window_unit_time_us,
       COALESCE(x.exposure_us, 0) AS exposure_us,
       COALESCE(x.window_exposure_us, 0) AS window_exposure_us,
       COALESCE(x.window_early_exposure_us, 0) AS window_early_exposure_us,
       COALESCE(q.unknown_style_events, 0) AS unknown_style_events,
       COALESCE(q.bad_quantity_events, 0) AS bad_quantity_events,
       COALESCE(q.unknown_type_events, 0) AS unknown_type_events
FROM keys k
LEFT JOIN activity a ON a.style_id = k.style_id AND a.market = k.market AND a.day = k.day
LEFT JOIN exposure x ON x.style_id = k.style_id AND x.market = k.market AND x.day = k.day
LEFT JOIN in_stock_views v
       ON v.style_id = k.style_id AND v.market = k.market AND v.day = k.day
LEFT JOIN quality q ON q.style_id = k.style_id AND q.market = k.market AND q.day = k.day
