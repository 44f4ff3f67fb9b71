-- The same funnel with the launch window in the join's ON and FILTER clauses instead
-- of CASE.
SELECT s.style_id,
       s.category,
       count(*) FILTER (WHERE e.event_type = 'view')                    AS views,
       count(*) FILTER (WHERE e.event_type = 'cart')                    AS carts,
       count(*) FILTER (WHERE e.event_type = 'purchase')                AS purchases,
       coalesce(sum(e.quantity) FILTER (WHERE e.event_type = 'purchase'), 0) AS units,
       coalesce(sum(e.quantity * e.price) FILTER (WHERE e.event_type = 'purchase'), 0) AS revenue,
       count(DISTINCT e.user_id) FILTER (WHERE e.event_type = 'purchase') AS buyers
FROM styles s
JOIN events e
  ON e.style_id = s.style_id
 AND e.event_time >= s.launch_at
 AND e.event_time < s.launch_at + INTERVAL '14 days'
GROUP BY s.style_id, s.category
ORDER BY s.style_id
