-- The daily rollup's days before {window_days_before}, cut to each style's windows:
-- what those days add to a funnel. A window of whole days [launch_at, launch_at + N
-- days] takes a day's `life_` counts before the day it ends on, the `cut_` counts (up to
-- the launch's time of day) on that day, and nothing after. The early window's units
-- stay inside the window; its in-stock time does not (as the raw part reads them).
SELECT d.style_id, d.market, d.day,
       CASE WHEN d.day < w.end_day THEN d.life_views WHEN d.day = w.end_day THEN d.cut_views
            ELSE 0 END AS window_views,
       CASE WHEN d.day < w.end_day THEN d.life_views_in_stock WHEN d.day = w.end_day THEN d.cut_views_in_stock
            ELSE 0 END AS window_views_in_stock,
       CASE WHEN d.day < w.end_day THEN d.life_carts WHEN d.day = w.end_day THEN d.cut_carts
            ELSE 0 END AS window_carts,
       CASE WHEN d.day < w.end_day THEN d.life_purchases WHEN d.day = w.end_day THEN d.cut_purchases
            ELSE 0 END AS window_purchases,
       CASE WHEN d.day < w.end_day THEN d.life_units WHEN d.day = w.end_day THEN d.cut_units
            ELSE 0 END AS window_units,
       CASE WHEN d.day < w.end_day THEN d.life_returns WHEN d.day = w.end_day THEN d.cut_returns
            ELSE 0 END AS window_returns,
       CASE WHEN d.day < w.end_day THEN d.life_revenue WHEN d.day = w.end_day THEN d.cut_revenue
            ELSE 0.0 END AS window_revenue,
       CASE WHEN d.day < w.early_units_day THEN d.life_units WHEN d.day = w.early_units_day THEN d.cut_units
            ELSE 0 END AS window_early_units,
       CASE WHEN d.day < w.end_day THEN d.life_non_size_returns WHEN d.day = w.end_day THEN d.cut_non_size_returns
            ELSE 0 END AS window_non_size_returns,
       CASE WHEN d.day < w.end_day THEN d.life_unit_time_us WHEN d.day = w.end_day THEN d.cut_unit_time_us
            ELSE 0 END AS window_unit_time_us,
       CASE WHEN d.day < w.end_day THEN d.life_exposure_us WHEN d.day = w.end_day THEN d.cut_exposure_us
            ELSE 0 END AS window_exposure_us,
       CASE WHEN d.day < w.early_day THEN d.life_exposure_us WHEN d.day = w.early_day THEN d.cut_exposure_us
            ELSE 0 END AS window_early_exposure_us
FROM style_daily d
JOIN (
    SELECT style_id,
           CAST(launch_at + INTERVAL '{window_seconds} seconds' AS DATE) AS end_day,
           CAST(launch_at + INTERVAL '{early_units_seconds} seconds' AS DATE) AS early_units_day,
           CAST(launch_at + INTERVAL '{early_seconds} seconds' AS DATE) AS early_day
    FROM styles
) w ON d.style_id = w.style_id
WHERE d.day < {window_days_before}
