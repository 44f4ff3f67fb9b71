-- The per-style launch funnel over raw events: what an analyst writes by hand in
-- DuckDB. Run unchanged by assay (DataFusion) and DuckDB; bench/peers.py says the same
-- in Polars. Tables: events (partitioned Parquet) and styles.
SELECT s.style_id,
       s.category,
       count(*) FILTER (WHERE e.event_type = 'view')                           AS views,
       count(*) FILTER (WHERE e.event_type = 'cart')                           AS carts,
       count(*) FILTER (WHERE e.event_type = 'purchase')                       AS purchases,
       coalesce(sum(e.quantity) FILTER (WHERE e.event_type = 'purchase'), 0)   AS units,
       coalesce(sum(e.quantity * e.price) FILTER (WHERE e.event_type = 'purchase'), 0) AS revenue,
       count(DISTINCT e.user_id) FILTER (WHERE e.event_type = 'purchase')      AS buyers
FROM events e
JOIN styles s ON e.style_id = s.style_id
WHERE e.event_time >= s.launch_at
  AND e.event_time < s.launch_at + INTERVAL '21 days'
GROUP BY s.style_id, s.category
ORDER BY s.style_id
