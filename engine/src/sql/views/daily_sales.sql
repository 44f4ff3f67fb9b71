-- In-stock daily sales of the launches of the last {lookback_days} days before as_of,
-- from the daily rollup's whole days: what each category's demand curve is fitted to.
-- One row per style × market × day with time in stock inside the style's window; the
-- age is the day's midday's, from launch (at least 0).
SELECT d.style_id, d.market, s.category,
       GREATEST(0.0, CAST(arrow_cast(arrow_cast(d.day, {timestamp_type}), 'Int64')
                          + {half_day_us} - arrow_cast(s.launch_at, 'Int64') AS DOUBLE)
                     / {day_us}) AS age_days,
       CAST(date_part('dow', d.day) AS BIGINT) AS weekday,
       CAST(d.window_units AS DOUBLE) AS units,
       CAST(d.window_exposure_us AS DOUBLE) / {day_us} AS exposure_days
FROM ({window_days}) d
JOIN styles s ON d.style_id = s.style_id
WHERE d.window_exposure_us > 0
  AND s.launch_at <= {until}
  AND s.launch_at >= {until} - INTERVAL '{lookback_seconds} seconds'
