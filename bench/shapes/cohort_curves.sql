-- Sell-through curves by days since launch: each category's units sold on each of its
-- styles' first 28 days, and the running share of the units its styles received.
WITH sold AS (
  SELECT s.category,
         CAST(floor((extract(epoch FROM e.event_time) - extract(epoch FROM s.launch_at)) / 86400) AS INTEGER) AS age_days,
         sum(e.quantity) AS units
  FROM events e
  JOIN styles s ON e.style_id = s.style_id
  WHERE e.event_type = 'purchase'
    AND e.event_time >= s.launch_at
    AND e.event_time < s.launch_at + INTERVAL '28 days'
  GROUP BY 1, 2
), received AS (
  SELECT s.category, sum(r.units) AS units
  FROM stock_receipts r
  JOIN styles s ON r.style_id = s.style_id
  GROUP BY s.category
)
SELECT sold.category,
       sold.age_days,
       sold.units,
       sum(sold.units) OVER (PARTITION BY sold.category ORDER BY sold.age_days)
         / CAST(received.units AS DOUBLE) AS sell_through
FROM sold
JOIN received ON received.category = sold.category
ORDER BY sold.category, sold.age_days
