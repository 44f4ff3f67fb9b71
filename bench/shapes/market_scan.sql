-- One market over two weeks: events and units by day and event type.
SELECT CAST(event_time AS DATE) AS day,
       event_type,
       count(*)      AS events,
       sum(quantity) AS units
FROM events
WHERE market = 'DE'
  AND event_time >= '2026-10-01T00:00:00Z'
  AND event_time < '2026-10-15T00:00:00Z'
GROUP BY 1, 2
ORDER BY 1, 2
