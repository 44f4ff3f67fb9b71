-- The launch funnel as an analyst first writes it: events joined to styles, the
-- 14-day launch window in WHERE, one CASE per event type, distinct buyers under CASE.
SELECT s.style_id,
       s.category,
       sum(CASE WHEN e.event_type = 'view' THEN 1 ELSE 0 END)                      AS views,
       sum(CASE WHEN e.event_type = 'cart' THEN 1 ELSE 0 END)                      AS carts,
       sum(CASE WHEN e.event_type = 'purchase' THEN 1 ELSE 0 END)                  AS purchases,
       sum(CASE WHEN e.event_type = 'purchase' THEN e.quantity ELSE 0 END)         AS units,
       sum(CASE WHEN e.event_type = 'purchase' THEN e.quantity * e.price ELSE 0 END) AS revenue,
       count(DISTINCT CASE WHEN e.event_type = 'purchase' THEN e.user_id END)      AS buyers
FROM events e
JOIN styles s ON e.style_id = s.style_id
WHERE e.event_time >= s.launch_at
  AND e.event_time < s.launch_at + INTERVAL '14 days'
GROUP BY s.style_id, s.category
ORDER BY s.style_id
