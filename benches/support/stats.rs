//! Latency samples (nanoseconds) and the figures the reports print.

/// Percentile `p` (0–1) of `ns` in µs; sorts `ns`. NaN when empty.
pub fn percentile_us(ns: &mut [u64], p: f64) -> f64 {
    if ns.is_empty() {
        return f64::NAN;
    }
    ns.sort_unstable();
    let at = ((ns.len() - 1) as f64 * p).round() as usize;
    ns[at] as f64 / 1000.0
}

/// Mean of `ns` in µs. NaN when empty.
pub fn mean_us(ns: &[u64]) -> f64 {
    if ns.is_empty() {
        return f64::NAN;
    }
    ns.iter().map(|&n| n as f64).sum::<f64>() / ns.len() as f64 / 1000.0
}

/// p50, p99 and mean in µs (sorts `ns`).
pub fn summary_us(ns: &mut [u64]) -> (f64, f64, f64) {
    (
        percentile_us(ns, 0.50),
        percentile_us(ns, 0.99),
        mean_us(ns),
    )
}

/// Latency for tables: one decimal below 100 µs.
pub fn micros(us: f64) -> String {
    if us.is_nan() {
        "-".into()
    } else if us < 100.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.0}")
    }
}

/// Least-squares slope of `(x, y)` points; NaN with fewer than two distinct x.
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return f64::NAN;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    if sxx == 0.0 {
        f64::NAN
    } else {
        sxy / sxx
    }
}

/// An environment knob: a number, or `default` when unset or unparsable.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// A comma-separated list of counts from `name` (e.g. `LOAD_CONNS=1,100`), else
/// `default`.
pub fn env_counts(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|c| c.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}
