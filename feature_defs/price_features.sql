-- Daily price features of BSE equity securities (is_equity: SC_TYPE 'Q' in legacy files, the
-- equity ISINs of UDiFF), one row per security and session, on prices adjusted for splits,
-- consolidations and bonuses (prices: adjusted).
-- Each security is its own window, ordered by trade_date: "previous" and "last n" count the
-- security's own rows (its traded sessions), never calendar days, and no value looks past its
-- own row.
-- Point in time: close * adj_factor is one continuous series across a security's splits (each
-- row's factor holds only actions effective on or before its date); a window over it divided
-- by the current row's adj_factor is on the current row's basis, as a vendor's back-adjusted
-- series would be on that day. Ratios (returns, RSI, z-score) need no division.
SELECT
    scrip_code,
    trade_date,
    close,
    pct_change(close * adj_factor, 1) OVER w AS return_1d,
    log_return(close * adj_factor, 1) OVER w AS log_return_1d,
    sma(close * adj_factor, 5) OVER w / adj_factor AS sma_5,
    sma(close * adj_factor, 20) OVER w / adj_factor AS sma_20,
    sma(close * adj_factor, 50) OVER w / adj_factor AS sma_50,
    ema(close * adj_factor, 12) OVER w / adj_factor AS ema_12,
    ema(close * adj_factor, 26) OVER w / adj_factor AS ema_26,
    lag(close * adj_factor, 1) OVER w / adj_factor AS close_lag_1,
    lag(close * adj_factor, 5) OVER w / adj_factor AS close_lag_5,
    pct_change(close * adj_factor, 10) OVER w AS momentum_10,
    rsi(close * adj_factor, 14) OVER w AS rsi_14,
    zscore(close * adj_factor, 20) OVER w AS zscore_20,
    sma(volume / adj_factor, 20) OVER w * adj_factor AS volume_sma_20
FROM bhavcopy_adjusted
WHERE is_equity
WINDOW w AS (PARTITION BY scrip_code ORDER BY trade_date)
