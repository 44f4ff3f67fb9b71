-- On-hand stock after every movement, per style × market. next_at is when the level
-- changes again (NULL for the last movement).
SELECT style_id, market, at, delta,
       SUM(delta) OVER w AS on_hand,
       LEAD(at) OVER w AS next_at,
       ROW_NUMBER() OVER w AS seq
FROM ({movements}) movements
WINDOW w AS (PARTITION BY style_id, market ORDER BY at, delta DESC
             ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
