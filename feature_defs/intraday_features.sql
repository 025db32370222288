-- Live intraday features of one-minute bars (`intraday_bars`), one row per instrument and
-- regular-session bar (09:15-15:29 IST starts). Pre-open and post-close bars, and bars of other
-- lengths, are stored but are not rows of this view.
-- w: the instrument's bars across sessions, ordered by start ("n bars back" counts bars, not
-- minutes, so a missing minute is not a gap row). s: the instrument's bars of one trade date.
-- No value reads a bar after its own row. The cum_* functions are the running SUM / MAX / MIN /
-- FIRST_VALUE of the session, computed in one pass per partition (udfs/src/cumulative.rs).
SELECT
    instrument,
    ts,
    trade_date,
    close,
    pct_change(close, 1) OVER w AS return_1m,
    pct_change(close, 5) OVER w AS return_5m,
    pct_change(close, 15) OVER w AS return_15m,
    sma(close, 15) OVER w AS sma_15,
    sma(close, 60) OVER w AS sma_60,
    ema(close, 20) OVER w AS ema_20,
    rsi(close, 14) OVER w AS rsi_14,
    rolling_std(log_return_1m, 30) OVER w AS realized_vol_30,
    zscore(volume, 20) OVER w AS volume_zscore_20,
    cum_sum((high + low + close) / 3 * volume) OVER s / cum_sum(volume) OVER s AS vwap_session,
    close / cum_first(open) OVER s - 1 AS session_return,
    cum_max(high) OVER s AS session_high,
    cum_min(low) OVER s AS session_low
FROM (
    SELECT *, log_return(close, 1) OVER (PARTITION BY instrument ORDER BY ts) AS log_return_1m
    FROM intraday_bars
    WHERE session = 'regular' AND interval_s = 60
)
WINDOW
    w AS (PARTITION BY instrument ORDER BY ts),
    s AS (PARTITION BY instrument, trade_date ORDER BY ts)
