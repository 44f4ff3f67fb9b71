-- Problems in the input that a run survives but a person should know about: counted by
-- the rollup for the days before {from_date}, read raw from the events after (through
-- {until}), like the funnel; the recent raw events are scanned once for all three.
-- Per check, in this order: how many, a style that has one, and its day.
SELECT
  SUM(unknown_style_events) AS unknown_style_events,
  MIN(CASE WHEN unknown_style_events > 0 THEN style_id END) AS unknown_style_example,
  MIN(CASE WHEN unknown_style_events > 0 THEN CAST(day AS VARCHAR) END) AS unknown_style_day,
  SUM(bad_quantity_events) AS bad_quantity_events,
  MIN(CASE WHEN bad_quantity_events > 0 THEN style_id END) AS bad_quantity_example,
  MIN(CASE WHEN bad_quantity_events > 0 THEN CAST(day AS VARCHAR) END) AS bad_quantity_day,
  SUM(unknown_type_events) AS unknown_type_events,
  MIN(CASE WHEN unknown_type_events > 0 THEN style_id END) AS unknown_type_example,
  MIN(CASE WHEN unknown_type_events > 0 THEN CAST(day AS VARCHAR) END) AS unknown_type_day
FROM (
  SELECT style_id, day, unknown_style_events, bad_quantity_events, unknown_type_events
  FROM style_daily
  WHERE day < {from_date}
    AND (unknown_style_events > 0 OR bad_quantity_events > 0 OR unknown_type_events > 0)
  UNION ALL
  SELECT e.style_id, e.event_date AS day,
         CASE WHEN s.style_id IS NULL THEN 1 ELSE 0 END AS unknown_style_events,
         CASE WHEN e.quantity IS NULL OR e.quantity <= 0 THEN 1 ELSE 0 END AS bad_quantity_events,
         CASE WHEN NOT (e.event_type IN ({event_types})) THEN 1 ELSE 0 END AS unknown_type_events
  FROM events e LEFT JOIN styles s ON e.style_id = s.style_id
  WHERE (s.style_id IS NULL OR e.quantity IS NULL OR e.quantity <= 0
         OR NOT (e.event_type IN ({event_types})))
    AND e.event_date >= {from_date} AND e.event_time <= {until}
) problems
