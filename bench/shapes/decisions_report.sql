-- The published decisions next to each style's catalog entry and its lifetime funnel:
-- the table a merchandiser's report is built on.
WITH funnel AS (
  SELECT style_id,
         count(*) FILTER (WHERE event_type = 'view')        AS views,
         count(*) FILTER (WHERE event_type = 'purchase')    AS purchases,
         coalesce(sum(quantity) FILTER (WHERE event_type = 'purchase'), 0) AS units,
         coalesce(sum(quantity) FILTER (WHERE event_type = 'return'), 0)   AS returned
  FROM events
  GROUP BY style_id
)
SELECT d.style_id,
       coalesce(d.market, 'all') AS market,
       s.category,
       s.list_price,
       d.verdict,
       d.reorder_units,
       d.p_keep,
       f.views,
       f.purchases,
       f.units,
       f.returned
FROM decisions d
JOIN styles s ON s.style_id = d.style_id
JOIN funnel f ON f.style_id = d.style_id
ORDER BY d.style_id, market
