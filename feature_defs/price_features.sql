-- Daily price features of BSE equity securities (is_equity: SC_TYPE 'Q' in legacy files, the
-- equity ISINs of UDiFF), one row per security and session.
-- Each security is its own window, ordered by trade_date: "previous" and "last n" count the
-- security's own rows (its traded sessions), never calendar days, and no value looks past its
-- own row.
SELECT
    scrip_code,
    trade_date,
    close,
    pct_change(close, 1) OVER w AS return_1d,
    log_return(close, 1) OVER w AS log_return_1d,
    sma(close, 5) OVER w AS sma_5,
    sma(close, 20) OVER w AS sma_20,
    sma(close, 50) OVER w AS sma_50,
    ema(close, 12) OVER w AS ema_12,
    ema(close, 26) OVER w AS ema_26,
    lag(close, 1) OVER w AS close_lag_1,
    lag(close, 5) OVER w AS close_lag_5,
    pct_change(close, 10) OVER w AS momentum_10,
    rsi(close, 14) OVER w AS rsi_14,
    zscore(close, 20) OVER w AS zscore_20,
    sma(volume, 20) OVER w AS volume_sma_20
FROM bhavcopy
WHERE is_equity
WINDOW w AS (PARTITION BY scrip_code ORDER BY trade_date)
