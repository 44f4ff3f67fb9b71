-- Every style × market × day of the daily rollup through {until_date}, in the order the
-- style pages read them.
SELECT * FROM style_daily
WHERE day <= {until_date}
ORDER BY style_id, market, day
