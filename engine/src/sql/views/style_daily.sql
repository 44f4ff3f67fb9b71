-- The daily rollup: per style × market × day of the days asked for, the day's
-- activity and in-stock time, plus the pieces of the launch funnel that add up over
-- days: the `life_` columns count only what happened at or after the style's launch,
-- and the `cut_` columns the same up to the launch's time of day, for the day a
-- whole-day window [launch_at, launch_at + N days] ends on. A decision run sums these
-- over past days (see `window_days.sql`) and reads raw events only from its own day
-- on, so its cost follows new data, not history; and no policy's window is cut into
-- the rows, so one rollup serves every policy.
-- Stock carries from day to day: the opening stock is each pair's at the first day.
WITH stock_levels AS ({stock_levels}),
stock_spells AS ({stock_spells}),
catalog AS (
    SELECT style_id, launch_at,
           arrow_cast(launch_at, 'Int64')
               - arrow_cast(arrow_cast(CAST(launch_at AS DATE), {timestamp_type}), 'Int64')
               AS launch_time_us
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
           COALESCE(e.event_time >= c.launch_at, false) AS live,
           COALESCE(e.event_time >= c.launch_at
                    AND arrow_cast(e.event_time, 'Int64')
                        - arrow_cast(arrow_cast(e.event_date, {timestamp_type}), 'Int64')
                        <= c.launch_time_us, false) AS cut,
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
           SUM(CASE WHEN live AND event_type = 'view' THEN 1 ELSE 0 END) AS life_views,
           SUM(CASE WHEN live AND event_type = 'cart' THEN 1 ELSE 0 END) AS life_carts,
           SUM(CASE WHEN live AND event_type = 'purchase' THEN 1 ELSE 0 END)
               AS life_purchases,
           SUM(CASE WHEN live AND event_type = 'purchase' THEN quantity ELSE 0 END)
               AS life_units,
           SUM(CASE WHEN live AND event_type = 'return' THEN quantity ELSE 0 END)
               AS life_returns,
           CAST(SUM(CASE WHEN live AND event_type = 'purchase'
                         THEN CAST(round(quantity * COALESCE(price, 0.0) * 1000000) AS BIGINT)
                         ELSE 0 END) AS DOUBLE) / 1000000.0 AS life_revenue,
           SUM(CASE WHEN live AND event_type = 'return'
                     AND COALESCE(return_reason, '') NOT IN ('size_small', 'size_large')
                    THEN quantity ELSE 0 END) AS life_non_size_returns,
           -- Σ units × time since midnight: with the day, the exact age of every unit
           -- sold that day, for the maturity weighting of the return test.
           SUM(CASE WHEN live AND event_type = 'purchase'
                    THEN CAST(quantity AS BIGINT) * since_day_start_us ELSE 0 END)
               AS life_unit_time_us,
           SUM(CASE WHEN cut AND event_type = 'view' THEN 1 ELSE 0 END) AS cut_views,
           SUM(CASE WHEN cut AND event_type = 'cart' THEN 1 ELSE 0 END) AS cut_carts,
           SUM(CASE WHEN cut AND event_type = 'purchase' THEN 1 ELSE 0 END)
               AS cut_purchases,
           SUM(CASE WHEN cut AND event_type = 'purchase' THEN quantity ELSE 0 END)
               AS cut_units,
           SUM(CASE WHEN cut AND event_type = 'return' THEN quantity ELSE 0 END)
               AS cut_returns,
           CAST(SUM(CASE WHEN cut AND event_type = 'purchase'
                         THEN CAST(round(quantity * COALESCE(price, 0.0) * 1000000) AS BIGINT)
                         ELSE 0 END) AS DOUBLE) / 1000000.0 AS cut_revenue,
           SUM(CASE WHEN cut AND event_type = 'return'
                     AND COALESCE(return_reason, '') NOT IN ('size_small', 'size_large')
                    THEN quantity ELSE 0 END) AS cut_non_size_returns,
           SUM(CASE WHEN cut AND event_type = 'purchase'
                    THEN CAST(quantity AS BIGINT) * since_day_start_us ELSE 0 END)
               AS cut_unit_time_us
    FROM day_events
    GROUP BY style_id, market, day
),
in_stock_views AS (
    SELECT v.style_id, v.market, v.day, COUNT(*) AS life_views_in_stock,
           SUM(CASE WHEN v.cut THEN 1 ELSE 0 END) AS cut_views_in_stock
    FROM day_events v
    JOIN stock_spells sp
      ON v.style_id = sp.style_id AND v.market = sp.market
     AND v.event_time >= sp.in_stock_from AND v.event_time < sp.in_stock_to
    WHERE v.event_type = 'view' AND v.live
    GROUP BY v.style_id, v.market, v.day
),
-- In-stock time in integer microseconds: integer sums are exact in any order.
exposure AS (
    SELECT sp.style_id, sp.market, c.day,
           SUM(arrow_cast(LEAST(sp.in_stock_to, c.day_end), 'Int64')
               - arrow_cast(GREATEST(sp.in_stock_from, c.day_start), 'Int64')) AS exposure_us,
           SUM(CASE WHEN k.launch_at IS NULL THEN 0 ELSE GREATEST(0,
               arrow_cast(LEAST(sp.in_stock_to, c.day_end), 'Int64')
               - arrow_cast(GREATEST(sp.in_stock_from, c.day_start, k.launch_at), 'Int64'))
               END) AS life_exposure_us,
           SUM(CASE WHEN k.launch_at IS NULL THEN 0 ELSE GREATEST(0,
               LEAST(arrow_cast(LEAST(sp.in_stock_to, c.day_end), 'Int64'),
                     arrow_cast(c.day_start, 'Int64') + k.launch_time_us)
               - arrow_cast(GREATEST(sp.in_stock_from, c.day_start, k.launch_at), 'Int64'))
               END) AS cut_exposure_us
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
       COALESCE(x.exposure_us, 0) AS exposure_us,
       COALESCE(a.life_views, 0) AS life_views,
       COALESCE(v.life_views_in_stock, 0) AS life_views_in_stock,
       COALESCE(a.life_carts, 0) AS life_carts,
       COALESCE(a.life_purchases, 0) AS life_purchases,
       COALESCE(a.life_units, 0) AS life_units,
       COALESCE(a.life_returns, 0) AS life_returns,
       COALESCE(a.life_revenue, 0.0) AS life_revenue,
       COALESCE(a.life_non_size_returns, 0) AS life_non_size_returns,
       COALESCE(a.life_unit_time_us, 0) AS life_unit_time_us,
       COALESCE(x.life_exposure_us, 0) AS life_exposure_us,
       COALESCE(a.cut_views, 0) AS cut_views,
       COALESCE(v.cut_views_in_stock, 0) AS cut_views_in_stock,
       COALESCE(a.cut_carts, 0) AS cut_carts,
       COALESCE(a.cut_purchases, 0) AS cut_purchases,
       COALESCE(a.cut_units, 0) AS cut_units,
       COALESCE(a.cut_returns, 0) AS cut_returns,
       COALESCE(a.cut_revenue, 0.0) AS cut_revenue,
       COALESCE(a.cut_non_size_returns, 0) AS cut_non_size_returns,
       COALESCE(a.cut_unit_time_us, 0) AS cut_unit_time_us,
       COALESCE(x.cut_exposure_us, 0) AS cut_exposure_us,
       COALESCE(q.unknown_style_events, 0) AS unknown_style_events,
       COALESCE(q.bad_quantity_events, 0) AS bad_quantity_events,
       COALESCE(q.unknown_type_events, 0) AS unknown_type_events
FROM keys k
LEFT JOIN activity a ON a.style_id = k.style_id AND a.market = k.market AND a.day = k.day
LEFT JOIN exposure x ON x.style_id = k.style_id AND x.market = k.market AND x.day = k.day
LEFT JOIN in_stock_views v
       ON v.style_id = k.style_id AND v.market = k.market AND v.day = k.day
LEFT JOIN quality q ON q.style_id = k.style_id AND q.market = k.market AND q.day = k.day
-- By day: the rollup writes a file per day as the rows arrive.
ORDER BY k.day, k.style_id, k.market
