-- In-stock spells per style × market: the time ranges with on-hand > 0, up to the end.
-- A spell is a run of consecutive movements after which stock stays positive
-- (gaps-and-islands: rows of one island share the count of stock-outs before them).
SELECT style_id, market,
       MIN(at) AS in_stock_from,
       MAX(COALESCE(next_at, {until})) AS in_stock_to
FROM (
    SELECT style_id, market, at, next_at, on_hand,
           SUM(CASE WHEN on_hand > 0 THEN 0 ELSE 1 END) OVER (
               PARTITION BY style_id, market ORDER BY seq
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS island
    FROM stock_levels
) islands
WHERE on_hand > 0
GROUP BY style_id, market, island
