-- The funnel's rows, per market and pooled, from its per-market rows (`market_rows`):
-- the engine runs this step over market_rows once computed.
SELECT style_id, market, category, launch_at, days_live,
       CAST(exposure_us AS DOUBLE) / {day_us} AS exposure_days,
       CAST(early_exposure_us AS DOUBLE) / {day_us} AS early_exposure_days,
       CAST(decayed_exposure_us AS DOUBLE) / {day_us} AS decayed_exposure_days,
       CAST(early_decayed_exposure_us AS DOUBLE) / {day_us} AS early_decayed_exposure_days,
       sold_out, views, views_in_stock, carts, purchases, units_sold, units_returned,
       CAST(revenue_micros AS DOUBLE) / 1000000.0 AS revenue, early_units, CAST(matured_unit_us AS DOUBLE) / {maturity_us} AS matured_units,
       matured_non_size_returns, units_received, test_batch_units, open_order_units, on_hand,
       list_price, unit_cost, lead_time_days, moq
FROM market_rows
UNION ALL
-- The pooled row: counts add up; exposure is the receipt-weighted mean of the markets'
-- (shown, not used: the profit rule sums the markets' rates, each on its own exposure).
SELECT style_id, 'ALL' AS market, MIN(category), MIN(launch_at), MIN(days_live),
       CAST(SUM(exposure_us * units_received) AS DOUBLE)
           / NULLIF(SUM(units_received), 0) / {day_us},
       CAST(SUM(early_exposure_us * units_received) AS DOUBLE)
           / NULLIF(SUM(units_received), 0) / {day_us},
       CAST(SUM(decayed_exposure_us * units_received) AS DOUBLE)
           / NULLIF(SUM(units_received), 0) / {day_us},
       CAST(SUM(early_decayed_exposure_us * units_received) AS DOUBLE)
           / NULLIF(SUM(units_received), 0) / {day_us},
       SUM(on_hand) <= 0,
       SUM(views), SUM(views_in_stock), SUM(carts), SUM(purchases),
       SUM(units_sold), SUM(units_returned), CAST(SUM(revenue_micros) AS DOUBLE) / 1000000.0,
       SUM(early_units), CAST(SUM(matured_unit_us) AS DOUBLE) / {maturity_us},
       SUM(matured_non_size_returns),
       SUM(units_received), SUM(test_batch_units), SUM(open_order_units), SUM(on_hand),
       MIN(list_price), MIN(unit_cost), MIN(lead_time_days), MIN(moq)
FROM market_rows
GROUP BY style_id
