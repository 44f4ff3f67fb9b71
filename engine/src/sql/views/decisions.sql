-- The published run's rows: what the API serves and the web page shows.
-- Each run file holds one run id, so its statistics prune the other runs' files.
SELECT * FROM decision_history WHERE {is_published}
