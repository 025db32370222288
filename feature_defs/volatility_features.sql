-- Volatility and range features of BSE equity securities, one row per security and session,
-- on prices adjusted for splits, consolidations and bonuses (prices: adjusted; see
-- price_features.sql for how adj_factor keeps every window on the current row's basis).
-- Returns are close-to-close between a security's consecutive rows (its traded sessions).
WITH daily AS (
    SELECT
        scrip_code,
        trade_date,
        high,
        low,
        close,
        adj_factor,
        pct_change(close * adj_factor, 1) OVER w AS return_1d,
        lag(close * adj_factor, 1) OVER w / adj_factor AS prev_close_row,
        CASE WHEN low > 0 THEN ln(high / low) END AS log_high_low
    FROM bhavcopy_adjusted
    WHERE is_equity
    WINDOW w AS (PARTITION BY scrip_code ORDER BY trade_date)
),
ranged AS (
    SELECT
        *,
        -- Wilder's true range; on a security's first row only high - low is known.
        CASE
            WHEN prev_close_row IS NULL THEN high - low
            ELSE greatest(high - low, abs(high - prev_close_row), abs(low - prev_close_row))
        END AS true_range
    FROM daily
)
SELECT
    scrip_code,
    trade_date,
    rolling_std(return_1d, 20) OVER w AS std_20,
    rolling_std(return_1d, 20) OVER w * sqrt(252.0) AS volatility_20,
    rolling_std(return_1d, 60) OVER w * sqrt(252.0) AS volatility_60,
    (high - low) / close AS high_low_range,
    true_range,
    wilder_mean(true_range * adj_factor, 14) OVER w / adj_factor AS atr_14,
    wilder_mean(true_range * adj_factor, 14) OVER w / adj_factor / close AS atr_14_pct,
    sqrt(sma(log_high_low * log_high_low, 20) OVER w / (4.0 * ln(2.0)) * 252.0) AS parkinson_vol_20,
    close * adj_factor / rolling_max(close * adj_factor, 20) OVER w - 1.0 AS drawdown_20
FROM ranged
WINDOW w AS (PARTITION BY scrip_code ORDER BY trade_date)
