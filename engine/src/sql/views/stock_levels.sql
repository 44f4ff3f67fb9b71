-- On-hand stock after every movement, per style × market, up to as_of. Stock moves with
-- receipts (+), purchases (−) and restockable returns (+; not `damaged` or `quality`).
-- next_at is when the level changes again (NULL for the last movement).
SELECT style_id, market, at, delta,
       SUM(delta) OVER w AS on_hand,
       LEAD(at) OVER w AS next_at,
       ROW_NUMBER() OVER w AS seq
FROM (
    SELECT style_id, market, received_at AS at, CAST(units AS BIGINT) AS delta
    FROM stock_receipts
    WHERE received_at <= {as_of}
    UNION ALL
    SELECT style_id, market, event_time AS at,
           CASE WHEN event_type = 'purchase' THEN -CAST(quantity AS BIGINT)
                ELSE CAST(quantity AS BIGINT) END AS delta
    FROM events
    WHERE event_date <= {as_of_date} AND event_time <= {as_of} AND quantity > 0
      AND (event_type = 'purchase'
           OR (event_type = 'return'
               AND COALESCE(return_reason, '') NOT IN ('damaged', 'quality')))
) movements
WINDOW w AS (PARTITION BY style_id, market ORDER BY at, delta DESC
             ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
