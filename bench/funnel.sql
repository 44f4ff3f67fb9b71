-- The per-style launch funnel over raw events, written as assay's own views write it:
-- each style's window end is computed once per style, so the join compares timestamps
-- instead of adding an interval to every probed row (in DataFusion 55 that addition in
-- the join filter took half the query's time). Run unchanged by assay (DataFusion) and
-- DuckDB; bench/peers.py says the same in Polars. Tables: events (partitioned Parquet)
-- and styles.
WITH windows AS (
  SELECT style_id, category, launch_at, launch_at + INTERVAL '21 days' AS window_end
  FROM styles
)
SELECT s.style_id,
       s.category,
       count(*) FILTER (WHERE e.event_type = 'view')                           AS views,
       count(*) FILTER (WHERE e.event_type = 'cart')                           AS carts,
       count(*) FILTER (WHERE e.event_type = 'purchase')                       AS purchases,
       coalesce(sum(e.quantity) FILTER (WHERE e.event_type = 'purchase'), 0)   AS units,
       coalesce(sum(e.quantity * e.price) FILTER (WHERE e.event_type = 'purchase'), 0) AS revenue,
       count(DISTINCT e.user_id) FILTER (WHERE e.event_type = 'purchase')      AS buyers
FROM events e
JOIN windows s ON e.style_id = s.style_id
WHERE e.event_time >= s.launch_at
  AND e.event_time < s.window_end
GROUP BY s.style_id, s.category
ORDER BY s.style_id
