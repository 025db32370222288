//! Property tests: every kernel against a naive O(rows × window) reference that recomputes
//! each row from scratch, on random series with NULLs, random window lengths, price random
//! walks, heavy ties, and prices around 1e5 with a spread of a few hundredths.
//!
//! # Tolerances
//!
//! Results are compared as `|actual - expected| <= REL * |expected| + floor` with
//! `REL = 1e-9`. Both sides are f64 computations whose rounding error is ~1e-16 times a small
//! multiple of the window length, so 1e-9 leaves about six orders of magnitude of headroom
//! while still catching any real bug (a wrong window edge or a lost term moves results by far
//! more) and any catastrophic cancellation (which in the tiny-variance cases would cost ~10
//! of the 16 digits). `floor` is the absolute rounding noise a quantity carries by
//! construction, where relative error is meaningless because the true value may be ~0:
//! * sums and means: `REL * Σ|x|` (or its mean) — the condition number of a sum;
//! * z-score: `REL` — z is O(1), its error is relative to the window's deviation scale;
//! * EMA: `REL * max|x|` — a convex combination of inputs;
//! * RSI: `REL * 100` — it lives in [0, 100];
//! * returns: `4 eps * max(1, |x_t / x_{t-k}|)` — the reference's `x / b - 1` itself rounds
//!   the ratio before subtracting 1;
//! * rolling std: 0 (purely relative; the reference below is accurate to a few ulps);
//! * rolling min/max: exact.

use bhavstore_udfs::kernels;
use proptest::collection::vec;
use proptest::prelude::*;

const REL: f64 = 1e-9;

// ---------------------------------------------------------------------------------------------
// Naive references

/// Applies `f` to the last `n` values at each row, if there are `n` and none is NULL.
fn naive_window(values: &[Option<f64>], n: usize, f: impl Fn(&[f64], f64) -> Option<f64>) -> Vec<Option<f64>> {
    (0..values.len())
        .map(|t| {
            if n == 0 || t + 1 < n {
                return None;
            }
            let window: Option<Vec<f64>> = values[t + 1 - n..=t].iter().copied().collect();
            f(&window?, values[t]?)
        })
        .collect()
}

/// Mean refined by one correction pass, so deviations from it are accurate even for prices
/// of 1e5 with a spread of 0.01.
fn accurate_mean(w: &[f64]) -> f64 {
    let n = w.len() as f64;
    let m0 = w.iter().sum::<f64>() / n;
    m0 + w.iter().map(|x| x - m0).sum::<f64>() / n
}

/// `x - mean(w)` for a member `x` of `w`, as `-Σ(w_i - x) / n`: every `w_i - x` is exact for
/// nearby values, so this stays accurate where `x - accurate_mean(w)` would be limited by the
/// mean's own representation (an ulp of 1e5 is 1.5e-11, not negligible against a 0.01 spread).
fn deviation_from_mean(w: &[f64], x: f64) -> f64 {
    -w.iter().map(|wi| wi - x).sum::<f64>() / w.len() as f64
}

fn all_equal(w: &[f64]) -> bool {
    w.iter().all(|&x| x == w[0])
}

/// Two-pass sample standard deviation; exactly 0 for equal values.
fn two_pass_std(w: &[f64]) -> f64 {
    if all_equal(w) {
        return 0.0;
    }
    let m = accurate_mean(w);
    (w.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (w.len() - 1) as f64).sqrt()
}

/// Start of the NULL-free run ending at `t` (`values[t]` must be non-NULL).
fn run_start(values: &[Option<f64>], t: usize) -> usize {
    (0..=t).rev().take_while(|&i| values[i].is_some()).last().unwrap_or(t)
}

fn naive_ema(values: &[Option<f64>], n: usize) -> Vec<Option<f64>> {
    let alpha = 2.0 / (n as f64 + 1.0);
    (0..values.len())
        .map(|t| {
            values[t]?;
            let s = run_start(values, t);
            if n == 0 || t + 1 - s < n {
                return None;
            }
            let run: Vec<f64> = values[s..=t].iter().map(|v| v.unwrap()).collect();
            Some(run[1..].iter().fold(run[0], |ema, &x| (1.0 - alpha) * ema + alpha * x))
        })
        .collect()
}

fn naive_rsi(values: &[Option<f64>], n: usize) -> Vec<Option<f64>> {
    (0..values.len())
        .map(|t| {
            values[t]?;
            let s = run_start(values, t);
            if n == 0 || t - s < n {
                return None;
            }
            let run: Vec<f64> = values[s..=t].iter().map(|v| v.unwrap()).collect();
            let gains: Vec<f64> = run.windows(2).map(|p| (p[1] - p[0]).max(0.0)).collect();
            let losses: Vec<f64> = run.windows(2).map(|p| (p[0] - p[1]).max(0.0)).collect();
            let nf = n as f64;
            let mut ag = gains[..n].iter().sum::<f64>() / nf;
            let mut al = losses[..n].iter().sum::<f64>() / nf;
            for i in n..gains.len() {
                ag = (ag * (nf - 1.0) + gains[i]) / nf;
                al = (al * (nf - 1.0) + losses[i]) / nf;
            }
            Some(if al == 0.0 { 100.0 } else { 100.0 - 100.0 / (1.0 + ag / al) })
        })
        .collect()
}

fn naive_wilder(values: &[Option<f64>], n: usize) -> Vec<Option<f64>> {
    (0..values.len())
        .map(|t| {
            values[t]?;
            let s = run_start(values, t);
            if n == 0 || t + 1 - s < n {
                return None;
            }
            let run: Vec<f64> = values[s..=t].iter().map(|v| v.unwrap()).collect();
            let nf = n as f64;
            let first = run[..n].iter().sum::<f64>() / nf;
            Some(run[n..].iter().fold(first, |avg, &x| (avg * (nf - 1.0) + x) / nf))
        })
        .collect()
}

fn naive_lagged(values: &[Option<f64>], k: usize, f: impl Fn(f64, f64) -> Option<f64>) -> Vec<Option<f64>> {
    (0..values.len())
        .map(|t| {
            if k == 0 || t < k {
                return None;
            }
            f(values[t]?, values[t - k]?)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Comparison

/// Asserts same NULL pattern and closeness; `floor(t)` is the absolute noise floor at row `t`.
fn assert_matches(
    name: &str,
    actual: &[Option<f64>],
    expected: &[Option<f64>],
    floor: impl Fn(usize) -> f64,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(actual.len(), expected.len(), "{}: length", name);
    for (t, (a, e)) in actual.iter().zip(expected).enumerate() {
        match (a, e) {
            (None, None) => {}
            (Some(a), Some(e)) => {
                let tolerance = REL * e.abs() + floor(t);
                prop_assert!(
                    (a - e).abs() <= tolerance,
                    "{name}: row {t}: got {a:e}, expected {e:e} (diff {:e} > tolerance {tolerance:e})",
                    (a - e).abs()
                );
            }
            _ => prop_assert!(false, "{name}: row {t}: got {a:?}, expected {e:?}"),
        }
    }
    Ok(())
}

/// Σ|x| over the last `n` values at row `t` (NULLs count as 0).
fn abs_sum(values: &[Option<f64>], n: usize, t: usize) -> f64 {
    values[(t + 1).saturating_sub(n)..=t].iter().flatten().map(|x| x.abs()).sum()
}

// ---------------------------------------------------------------------------------------------
// Generators

fn values() -> impl Strategy<Value = Vec<f64>> {
    prop_oneof![
        // Arbitrary values of both signs.
        vec(-1e3..1e3f64, 0..160),
        // Small integers: zeros, ties, flat runs.
        vec((-3i32..=3).prop_map(f64::from), 0..160),
        // Price random walk from 1 to 1e5, moves of up to ±2%.
        (1.0..1e5f64, vec(-0.02..0.02f64, 0..160)).prop_map(|(p0, moves)| {
            moves
                .iter()
                .scan(p0, |p, m| {
                    *p *= 1.0 + m;
                    Some(*p)
                })
                .collect()
        }),
        // Prices around 1e5 with a tick of 0.01: tiny variance, frequent flat windows.
        vec((-4i32..=4).prop_map(|k| 1e5 + f64::from(k) * 0.01), 0..160),
        // The same with rare bad ticks (0 or 1e7) that enter and leave windows.
        vec(
            prop_oneof![
                20 => (-4i32..=4).prop_map(|k| 1e5 + f64::from(k) * 0.01),
                1 => Just(0.0),
                1 => Just(1e7),
            ],
            0..160
        ),
    ]
}

/// Random series with no, few or many NULLs.
fn series() -> impl Strategy<Value = Vec<Option<f64>>> {
    (values(), prop_oneof![Just(0.0), Just(0.03), Just(0.2)]).prop_flat_map(|(values, null_rate)| {
        let len = values.len();
        vec(prop::bool::weighted(null_rate), len).prop_map(move |nulls| {
            values.iter().zip(nulls).map(|(&x, null)| if null { None } else { Some(x) }).collect()
        })
    })
}

fn window() -> impl Strategy<Value = usize> {
    prop_oneof![1usize..=5, 1usize..=40, Just(200)]
}

// ---------------------------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn sma_matches_naive(xs in series(), n in window()) {
        let expected = naive_window(&xs, n, |w, _| Some(w.iter().sum::<f64>() / w.len() as f64));
        assert_matches("sma", &kernels::sma(&xs, n), &expected, |t| REL * abs_sum(&xs, n, t) / n as f64)?;
    }

    #[test]
    fn rolling_sum_matches_naive(xs in series(), n in window()) {
        let expected = naive_window(&xs, n, |w, _| Some(w.iter().sum()));
        assert_matches("rolling_sum", &kernels::rolling_sum(&xs, n), &expected, |t| REL * abs_sum(&xs, n, t))?;
    }

    #[test]
    fn rolling_std_matches_two_pass(xs in series(), n in window()) {
        let expected = naive_window(&xs, n, |w, _| (w.len() >= 2).then(|| two_pass_std(w)));
        assert_matches("rolling_std", &kernels::rolling_std(&xs, n), &expected, |_| 0.0)?;
    }

    #[test]
    fn zscore_matches_naive(xs in series(), n in window()) {
        let expected = naive_window(&xs, n, |w, x| {
            (w.len() >= 2 && !all_equal(w)).then(|| deviation_from_mean(w, x) / two_pass_std(w))
        });
        assert_matches("zscore", &kernels::zscore(&xs, n), &expected, |_| REL)?;
    }

    #[test]
    fn rolling_min_matches_naive(xs in series(), n in window()) {
        let expected = naive_window(&xs, n, |w, _| w.iter().copied().reduce(f64::min));
        prop_assert_eq!(kernels::rolling_min(&xs, n), expected);
    }

    #[test]
    fn rolling_max_matches_naive(xs in series(), n in window()) {
        let expected = naive_window(&xs, n, |w, _| w.iter().copied().reduce(f64::max));
        prop_assert_eq!(kernels::rolling_max(&xs, n), expected);
    }

    #[test]
    fn ema_matches_naive(xs in series(), n in window()) {
        let scale = xs.iter().flatten().fold(0.0f64, |m, x| m.max(x.abs()));
        assert_matches("ema", &kernels::ema(&xs, n), &naive_ema(&xs, n), |_| REL * scale)?;
    }

    #[test]
    fn wilder_mean_matches_naive(xs in series(), n in window()) {
        let scale = xs.iter().flatten().fold(0.0f64, |m, x| m.max(x.abs()));
        assert_matches("wilder_mean", &kernels::wilder_mean(&xs, n), &naive_wilder(&xs, n), |_| REL * scale)?;
    }

    #[test]
    fn rsi_matches_naive(xs in series(), n in window()) {
        let actual = kernels::rsi(&xs, n);
        assert_matches("rsi", &actual, &naive_rsi(&xs, n), |_| REL * 100.0)?;
        prop_assert!(actual.iter().flatten().all(|r| (0.0..=100.0).contains(r)));
    }

    #[test]
    fn pct_change_matches_naive(xs in series(), k in window()) {
        let expected = naive_lagged(&xs, k, |x, b| (b != 0.0).then(|| x / b - 1.0));
        let floor = |t: usize| 4.0 * f64::EPSILON * expected[t].map_or(1.0, |r| (r + 1.0).abs().max(1.0));
        assert_matches("pct_change", &kernels::pct_change(&xs, k), &expected, floor)?;
    }

    #[test]
    fn log_return_matches_naive(xs in series(), k in window()) {
        let expected = naive_lagged(&xs, k, |x, b| (b != 0.0 && x / b > 0.0).then(|| (x / b).ln()));
        let floor = |t: usize| 4.0 * f64::EPSILON * expected[t].map_or(1.0, |r| r.exp().max(1.0));
        assert_matches("log_return", &kernels::log_return(&xs, k), &expected, floor)?;
    }

    /// No kernel panics or changes length on any input, including n == 0 and n > len.
    #[test]
    fn kernels_are_total(xs in series(), n in 0usize..300) {
        for kernel in ALL {
            prop_assert_eq!(kernel(&xs, n).len(), xs.len());
        }
    }
}

type Kernel = fn(&[Option<f64>], usize) -> Vec<Option<f64>>;

const ALL: [Kernel; 11] = [
    kernels::sma,
    kernels::rolling_sum,
    kernels::rolling_std,
    kernels::zscore,
    kernels::rolling_min,
    kernels::rolling_max,
    kernels::ema,
    kernels::rsi,
    kernels::wilder_mean,
    kernels::pct_change,
    kernels::log_return,
];

// ---------------------------------------------------------------------------------------------
// Long series: drift of the running accumulators over many rebuild periods.

/// Deterministic pseudo-random walk in ticks of 0.01 around 1e5 (xorshift, no dependencies).
fn tick_walk(len: usize, seed: u64) -> Vec<Option<f64>> {
    let mut state = seed;
    let mut ticks = 0i64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ticks += (state % 3) as i64 - 1;
            Some(1e5 + ticks as f64 * 0.01)
        })
        .collect()
}

#[test]
fn rolling_std_and_zscore_stay_accurate_over_long_tiny_variance_series() {
    let xs = tick_walk(30_000, 0x9E37_79B9_7F4A_7C15);
    for n in [2, 20, 250] {
        let std_ref = naive_window(&xs, n, |w, _| Some(two_pass_std(w)));
        assert_matches("rolling_std", &kernels::rolling_std(&xs, n), &std_ref, |_| 0.0).unwrap();
        let z_ref = naive_window(&xs, n, |w, x| (!all_equal(w)).then(|| deviation_from_mean(w, x) / two_pass_std(w)));
        assert_matches("zscore", &kernels::zscore(&xs, n), &z_ref, |_| REL).unwrap();
    }
}

/// A catastrophic-cancellation formula (Σx² - (Σx)²/n) would be off by orders of magnitude
/// here; check the kernel against values worked out by hand.
#[test]
fn rolling_std_of_tiny_spread_at_1e5() {
    let xs: Vec<Option<f64>> = [100000.01, 100000.02, 100000.03, 100000.02].into_iter().map(Some).collect();
    let got = kernels::rolling_std(&xs, 3);
    // Windows {.01,.02,.03} and {.02,.03,.02}: std 0.01 and 0.01/sqrt(3).
    assert_eq!(got[..2], [None, None]);
    assert!((got[2].unwrap() - 0.01).abs() < 1e-9 * 0.01, "{got:?}");
    assert!((got[3].unwrap() - 0.01 / 3f64.sqrt()).abs() < 1e-9 * 0.01, "{got:?}");
}

/// The kernels are O(rows): a window of 100k over 200k rows would take ~10^10 steps if any
/// of them rescanned its window. Each must finish well within the test timeout.
#[test]
fn kernels_do_not_rescan_the_window() {
    let xs = tick_walk(200_000, 42);
    for kernel in ALL {
        let start = std::time::Instant::now();
        let out = kernel(&xs, 100_000);
        assert_eq!(out.len(), xs.len());
        assert!(start.elapsed().as_secs() < 20, "took {:?}", start.elapsed());
    }
}

/// Resuming: each recursive kernel run over a series split at any row, the second part
/// continued from the state the first left, gives the one-pass result bit for bit (what lets
/// materialization carry a state instead of the partition's history).
type Resumable = (&'static str, kernels::Resume, fn(&[Option<f64>], usize) -> Vec<Option<f64>>);
const RESUMABLE: [Resumable; 3] = [
    ("ema", kernels::ema_from, kernels::ema),
    ("rsi", kernels::rsi_from, kernels::rsi),
    ("wilder_mean", kernels::wilder_mean_from, kernels::wilder_mean),
];

fn bits(v: &[Option<f64>]) -> Vec<Option<u64>> {
    v.iter().map(|x| x.map(f64::to_bits)).collect()
}

proptest! {
    #[test]
    fn recursions_resumed_at_any_row_equal_one_pass_bit_for_bit(
        xs in series(),
        n in window(),
        cuts in vec(0usize..1000, 0..4),
    ) {
        for (name, from, whole) in RESUMABLE {
            let expected = whole(&xs, n);
            // Split into up to five pieces; each continues from the state the previous left.
            let mut at: Vec<usize> = cuts.iter().map(|c| c % (xs.len() + 1)).collect();
            at.push(xs.len());
            at.sort_unstable();
            let (mut state, mut got, mut start) = (kernels::Recursion::default(), Vec::new(), 0);
            for end in at {
                got.extend(from(&xs[start..end], n, &mut state));
                start = end;
            }
            prop_assert_eq!(bits(&got), bits(&expected), "{} n={} cuts={:?}", name, n, cuts);
        }
    }
}
