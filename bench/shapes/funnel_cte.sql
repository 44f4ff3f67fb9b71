-- The same funnel built from one CTE per event type, each joined to the catalog on its
-- own, then put side by side for every style (styles with nothing in their window
-- included, as zeros).
WITH views AS (
  SELECT e.style_id, count(*) AS views
  FROM events e JOIN styles s ON e.style_id = s.style_id
  WHERE e.event_type = 'view'
    AND e.event_time >= s.launch_at AND e.event_time < s.launch_at + INTERVAL '14 days'
  GROUP BY e.style_id
), carts AS (
  SELECT e.style_id, count(*) AS carts
  FROM events e JOIN styles s ON e.style_id = s.style_id
  WHERE e.event_type = 'cart'
    AND e.event_time >= s.launch_at AND e.event_time < s.launch_at + INTERVAL '14 days'
  GROUP BY e.style_id
), purchases AS (
  SELECT e.style_id,
         count(*) AS purchases,
         sum(e.quantity) AS units,
         sum(e.quantity * e.price) AS revenue,
         count(DISTINCT e.user_id) AS buyers
  FROM events e JOIN styles s ON e.style_id = s.style_id
  WHERE e.event_type = 'purchase'
    AND e.event_time >= s.launch_at AND e.event_time < s.launch_at + INTERVAL '14 days'
  GROUP BY e.style_id
)
SELECT s.style_id,
       s.category,
       coalesce(v.views, 0)     AS views,
       coalesce(c.carts, 0)     AS carts,
       coalesce(p.purchases, 0) AS purchases,
       coalesce(p.units, 0)     AS units,
       coalesce(p.revenue, 0)   AS revenue,
       coalesce(p.buyers, 0)    AS buyers
FROM styles s
LEFT JOIN views v ON v.style_id = s.style_id
LEFT JOIN carts c ON c.style_id = s.style_id
LEFT JOIN purchases p ON p.style_id = s.style_id
ORDER BY s.style_id
