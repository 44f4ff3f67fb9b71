-- One row per stored run, the published one marked.
SELECT
  run_id,
  min(as_of) AS as_of,
  min(policy_version) AS policy_version,
  min(model_version) AS model_version,
  {is_published} AS published,
  count(*) FILTER (WHERE market = 'ALL') AS styles,
  count(*) AS rows,
  count(*) FILTER (WHERE market = 'ALL' AND verdict = 'keep') AS keep,
  count(*) FILTER (WHERE market = 'ALL' AND verdict = 'drop') AS "drop",
  count(*) FILTER (WHERE market = 'ALL' AND verdict = 'test') AS test
FROM decision_history
GROUP BY run_id
