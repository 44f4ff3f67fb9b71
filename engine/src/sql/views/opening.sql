-- Each style × market's stock at the start: receipts before it, less what the rollup's
-- earlier days sold (purchases net of restocked returns).
SELECT COALESCE(r.style_id, p.style_id) AS style_id,
       COALESCE(r.market, p.market) AS market,
       COALESCE(r.received, 0) - COALESCE(p.net_out, 0) AS on_hand
FROM (
    SELECT style_id, market, SUM(CAST(units AS BIGINT)) AS received
    FROM stock_receipts
    WHERE received_at < {from}
    GROUP BY style_id, market
) r
FULL OUTER JOIN (
    SELECT style_id, market, SUM(units - restocked_units) AS net_out
    FROM style_daily
    WHERE day < {from_date}
    GROUP BY style_id, market
) p ON r.style_id = p.style_id AND r.market = p.market
