-- Stock movements per style × market from the start through the end: the opening stock at
-- the start, then receipts (+), purchases (−) and restockable returns (+; not `damaged` or
-- `quality`). Over all history the opening is empty; a decision run that reads the
-- daily rollup starts at its first raw day with the stock the rollup carries to it.
SELECT style_id, market, {from} AS at, on_hand AS delta
FROM ({opening}) opening
UNION ALL
SELECT style_id, market, received_at AS at, CAST(units AS BIGINT) AS delta
FROM stock_receipts
WHERE received_at >= {from} AND received_at <= {until}
UNION ALL
SELECT style_id, market, event_time AS at,
       CASE WHEN event_type = 'purchase' THEN -CAST(quantity AS BIGINT)
            ELSE CAST(quantity AS BIGINT) END AS delta
FROM events
WHERE event_date >= {from_date} AND event_date <= {until_date}
  AND event_time >= {from} AND event_time <= {until} AND quantity > 0
  AND (event_type = 'purchase'
       OR (event_type = 'return'
           AND COALESCE(return_reason, '') NOT IN ('damaged', 'quality')))
