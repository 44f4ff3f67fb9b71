-- The five best sellers of each category over their first 14 days, ranked with a
-- window function.
WITH units AS (
  SELECT s.category, s.style_id, sum(e.quantity) AS units, sum(e.quantity * e.price) AS revenue
  FROM events e
  JOIN styles s ON e.style_id = s.style_id
  WHERE e.event_type = 'purchase'
    AND e.event_time >= s.launch_at
    AND e.event_time < s.launch_at + INTERVAL '14 days'
  GROUP BY s.category, s.style_id
), ranked AS (
  SELECT category, style_id, units, revenue,
         row_number() OVER (PARTITION BY category ORDER BY units DESC, style_id) AS rank
  FROM units
)
SELECT category, rank, style_id, units, revenue
FROM ranked
WHERE rank <= 5
ORDER BY category, rank
