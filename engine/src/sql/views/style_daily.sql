-- Per style × market × day up to as_of: activity and in-stock hours (hours < 24 mark a
-- stock-out or the launch day).
WITH stock_levels AS ({stock_levels}),
stock_spells AS ({stock_spells}),
calendar AS (
    SELECT DISTINCT event_date AS day FROM events WHERE event_date <= {as_of_date}
),
exposure AS (
    SELECT sp.style_id, sp.market, c.day,
           CAST(SUM(arrow_cast(LEAST(sp.in_stock_to, {day_start} + INTERVAL '1 day'), 'Int64')
                    - arrow_cast(GREATEST(sp.in_stock_from, {day_start}), 'Int64')) AS DOUBLE)
               / 3600000000.0 AS exposure_hours
    FROM stock_spells sp
    JOIN calendar c
      ON c.day >= CAST(sp.in_stock_from AS DATE) AND c.day <= CAST(sp.in_stock_to AS DATE)
    GROUP BY sp.style_id, sp.market, c.day
),
activity AS (
    SELECT style_id, market, event_date AS day,
           SUM(CASE WHEN event_type = 'view' THEN 1 ELSE 0 END) AS views,
           SUM(CASE WHEN event_type = 'cart' THEN 1 ELSE 0 END) AS carts,
           SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS purchases,
           SUM(CASE WHEN event_type = 'purchase' THEN quantity ELSE 0 END) AS units,
           SUM(CASE WHEN event_type = 'return' THEN quantity ELSE 0 END) AS returns,
           SUM(CASE WHEN event_type = 'purchase' THEN quantity * COALESCE(price, 0.0) ELSE 0.0 END)
               AS revenue
    FROM events
    WHERE event_date <= {as_of_date} AND event_time <= {as_of} AND quantity > 0
    GROUP BY style_id, market, event_date
)
SELECT COALESCE(a.style_id, x.style_id) AS style_id,
       COALESCE(a.market, x.market) AS market,
       COALESCE(a.day, x.day) AS day,
       COALESCE(a.views, 0) AS views,
       COALESCE(a.carts, 0) AS carts,
       COALESCE(a.purchases, 0) AS purchases,
       COALESCE(a.units, 0) AS units,
       COALESCE(a.returns, 0) AS returns,
       COALESCE(a.revenue, 0.0) AS revenue,
       COALESCE(x.exposure_hours, 0.0) AS exposure_hours
FROM activity a
FULL OUTER JOIN exposure x
  ON a.style_id = x.style_id AND a.market = x.market AND a.day = x.day
