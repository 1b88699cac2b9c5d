//! Privacy loss distributions (PLD): a tighter accountant for the Poisson-subsampled Gaussian
//! mechanism under add/remove adjacency, reported beside the RDP ledger's epsilon.
//!
//! A PLD is the distribution of the privacy loss `ln(P(o) / Q(o))` for `o ~ P`, over a pair of
//! output distributions that dominates every pair of neighbouring data sets. Composition
//! convolves PLDs; `delta(epsilon) = E[(1 - e^(epsilon - L))_+] + P(L = infinity)`.
//!
//! Both directions of add/remove adjacency are kept (`remove`: `P` is the mixture
//! `(1 - q) N(0, s^2) + q N(1, s^2)` against `Q = N(0, s^2)`; `add`: the reverse), composed
//! separately, and the epsilon reported is the larger of the two, as in dp-accounting.
//!
//! **Discretisation (pessimistic).** Losses live on the grid `i * interval` (1e-4 by default, as
//! in dp-accounting). Each direction is discretised by connect-the-dots (Doroshenko, Ghazi,
//! Kamath, Kumar and Manurangsi, 2022, Algorithm 1): the exact hockey-stick divergence is computed
//! at every grid point, and the discrete PLD is the one whose hockey-stick curve passes through
//! those points and is linear in `e^epsilon` between them. The exact curve is convex in
//! `e^epsilon`, so the chord lies above it: the discrete PLD's delta is never below the exact
//! delta, at any epsilon. The grid spans the losses of outputs within `10 sigma` of the means
//! (mass below `e^-50` outside); mass beyond the top point is counted as infinite loss.
//!
//! **Composition.** By FFT convolution (double precision), with exponentiation by squaring for
//! repeated rounds. After each convolution the tails holding less than `1e-15` of mass are cut,
//! pessimistically: the lower tail's mass moves up to the first loss kept, the upper tail's to
//! infinity.

use crate::special::ln_erfc;
use crate::{check_delta, check_positive, check_rate, Error};

/// The loss grid's step, as in dp-accounting.
pub const DEFAULT_INTERVAL: f64 = 1e-4;

/// Most grid points a PLD may hold, before its tails are cut: 2^23, about 64 MiB of masses and
/// 512 MiB of FFT buffers at the largest convolution. Past it, composition is refused (the
/// epsilon is then too large to be of use, or sigma too small for this grid).
pub const MAX_POINTS: usize = 1 << 23;

/// Mass cut from each tail after a convolution.
const TAIL: f64 = 1e-15;

/// Outputs within this many standard deviations of the means span the grid (`e^-50` outside).
const SPAN_SIGMAS: f64 = 10.0;

/// A discrete privacy loss distribution: mass `pmf[i]` at loss `(lo + i) * interval`, and mass
/// `infinity` at infinite loss.
#[derive(Debug, Clone, PartialEq)]
pub struct Pld {
    interval: f64,
    lo: i64,
    pmf: Vec<f64>,
    infinity: f64,
}

/// `ln Phi(z)`, the standard normal CDF's logarithm.
fn ln_phi(z: f64) -> f64 {
    0.5f64.ln() + ln_erfc(-z / core::f64::consts::SQRT_2)
}

/// `a - b` from `ln a` and `ln b` (with `a >= b`), as a number; 0 where rounding makes `b > a`.
fn diff_of_logs(la: f64, lb: f64) -> f64 {
    if la == f64::NEG_INFINITY || lb >= la {
        return 0.0;
    }
    la.exp() * -(lb - la).exp_m1()
}

/// The hockey-stick divergence `delta(epsilon)` of the `remove` direction: `P = (1 - q) N(0,
/// s^2) + q N(1, s^2)` against `Q = N(0, s^2)`.
fn remove_delta(q: f64, sigma: f64, eps: f64) -> f64 {
    // L(x) > eps exactly when x > x*, where e^((2x* - 1) / (2 s^2)) = (e^eps - 1 + q) / q.
    let excess = eps.exp_m1() + q;
    if excess <= 0.0 {
        // Every loss is at least ln(1 - q) > eps.
        return -eps.exp_m1();
    }
    let x = sigma * sigma * (excess / q).ln() + 0.5;
    let la = q.ln() + ln_phi(-(x - 1.0) / sigma);
    let lb = excess.ln() + ln_phi(-x / sigma);
    diff_of_logs(la, lb)
}

/// The hockey-stick divergence of the `add` direction: `P = N(0, s^2)` against
/// `Q = (1 - q) N(0, s^2) + q N(1, s^2)`.
fn add_delta(q: f64, sigma: f64, eps: f64) -> f64 {
    // L(x) = -ln(1 - q + q e^((2x - 1) / (2 s^2))) > eps exactly when x < x*.
    let room = (-eps).exp_m1() + q;
    if room <= 0.0 {
        // Every loss is at most -ln(1 - q) <= eps.
        return 0.0;
    }
    let x = sigma * sigma * (room / q).ln() + 0.5;
    // (1 - e^eps (1 - q)) Phi(x / s) - q e^eps Phi((x - 1) / s)
    let kept = -(eps + (-q).ln_1p()).exp_m1();
    if kept <= 0.0 {
        return 0.0;
    }
    let la = kept.ln() + ln_phi(x / sigma);
    let lb = q.ln() + eps + ln_phi((x - 1.0) / sigma);
    diff_of_logs(la, lb)
}

/// The loss of output `x` in the `remove` direction, `ln(1 - q + q e^((2x - 1) / (2 s^2)))`.
fn remove_loss(q: f64, sigma: f64, x: f64) -> f64 {
    let shifted = q.ln() + (2.0 * x - 1.0) / (2.0 * sigma * sigma);
    if q >= 1.0 {
        return shifted;
    }
    crate::special::log_add((-q).ln_1p(), shifted)
}

/// The first and last grid points of a PLD.
type Extent = (i64, i64);

/// The grid extents of one round's two directions, `((lo, hi) remove, (lo, hi) add)`, checked
/// against [`MAX_POINTS`] without building anything.
fn grids(q: f64, sigma: f64, interval: f64) -> Result<(Extent, Extent), Error> {
    check_rate(q)?;
    check_positive("sigma", sigma)?;
    check_positive("interval", interval)?;
    let span = SPAN_SIGMAS * sigma;
    let grid = |lo: f64, hi: f64| -> Result<(i64, i64), Error> {
        let (lo, hi) = ((lo / interval).floor(), (hi / interval).ceil());
        // (NaN bounds fail too)
        if (hi - lo).partial_cmp(&(MAX_POINTS as f64)) != Some(core::cmp::Ordering::Less) {
            return Err(too_large(hi - lo + 1.0));
        }
        Ok((lo as i64, hi as i64))
    };
    // remove: outputs from -span (below both means) to 1 + span; the loss rises with x.
    let remove = grid(
        remove_loss(q, sigma, -span),
        remove_loss(q, sigma, 1.0 + span),
    )?;
    // add: outputs of N(0, s^2) within its span; the loss falls as x rises.
    let add = grid(-remove_loss(q, sigma, span), -remove_loss(q, sigma, -span))?;
    Ok((remove, add))
}

/// Whether one round at `(q, sigma)` fits the PLD's grid (step [`DEFAULT_INTERVAL`]): what a
/// federation on the PLD accountant is checked for when it is created.
pub fn fits(q: f64, sigma: f64) -> Result<(), Error> {
    grids(q, sigma, DEFAULT_INTERVAL).map(drop)
}

impl Pld {
    /// Connect-the-dots: the discrete PLD on the grid points `lo..=hi` (times `interval`) whose
    /// hockey-stick curve passes through `delta` at each of them.
    fn connect_dots(interval: f64, lo: i64, hi: i64, delta: impl Fn(f64) -> f64) -> Pld {
        let deltas: Vec<f64> = (lo..=hi)
            .map(|i| delta(i as f64 * interval))
            .scan(1.0f64, |min, d| {
                // A hockey-stick curve never rises; rounding must not make it.
                *min = min.min(d.clamp(0.0, 1.0));
                Some(*min)
            })
            .collect();
        let n = deltas.len();
        let (down, up) = (-(-interval).exp_m1(), interval.exp_m1());
        let mut pmf = vec![0.0; n];
        for i in 0..n {
            let below = if i == 0 {
                1.0 - deltas[0]
            } else {
                (deltas[i - 1] - deltas[i]) / down
            };
            let above = if i + 1 < n {
                (deltas[i] - deltas[i + 1]) / up
            } else {
                0.0
            };
            pmf[i] = (below - above).max(0.0);
        }
        Pld {
            interval,
            lo,
            pmf,
            infinity: deltas[n - 1],
        }
    }

    /// The two directions of one round of the Gaussian mechanism with noise multiplier `sigma`,
    /// Poisson-subsampled at rate `q`: `(remove, add)`.
    pub fn sampled_gaussian(q: f64, sigma: f64, interval: f64) -> Result<(Pld, Pld), Error> {
        let ((rlo, rhi), (alo, ahi)) = grids(q, sigma, interval)?;
        let remove = Pld::connect_dots(interval, rlo, rhi, |e| remove_delta(q, sigma, e));
        let add = Pld::connect_dots(interval, alo, ahi, |e| add_delta(q, sigma, e));
        Ok((remove, add))
    }

    /// The PLD of both mechanisms run (their losses add): a convolution, tails cut. Refused when
    /// the result would hold more than [`MAX_POINTS`] grid points.
    pub fn compose(&self, other: &Pld) -> Result<Pld, Error> {
        self.compose_within(other, MAX_POINTS)
    }

    fn compose_within(&self, other: &Pld, max_points: usize) -> Result<Pld, Error> {
        let len = self.pmf.len() + other.pmf.len() - 1;
        if len > max_points {
            return Err(too_large(len as f64));
        }
        let pmf = convolve(&self.pmf, &other.pmf);
        let infinity = 1.0 - (1.0 - self.infinity) * (1.0 - other.infinity);
        Ok(Pld {
            interval: self.interval,
            lo: self.lo + other.lo,
            pmf,
            infinity,
        }
        .truncated())
    }

    /// The PLD of `k >= 1` runs of this mechanism (as [`Pld::compose`]).
    pub fn self_compose(&self, k: u64) -> Result<Pld, Error> {
        self.self_compose_within(k, MAX_POINTS)
    }

    fn self_compose_within(&self, k: u64, max_points: usize) -> Result<Pld, Error> {
        let mut base = self.clone();
        let mut acc: Option<Pld> = None;
        let mut k = k.max(1);
        loop {
            if k & 1 == 1 {
                acc = Some(match acc {
                    None => base.clone(),
                    Some(a) => a.compose_within(&base, max_points)?,
                });
            }
            k >>= 1;
            if k == 0 {
                break;
            }
            base = base.compose_within(&base, max_points)?;
        }
        Ok(acc.unwrap_or(base))
    }

    /// Cut the tails holding less than [`TAIL`] of mass each, pessimistically.
    fn truncated(mut self) -> Pld {
        let (mut low, mut cut) = (0usize, 0.0);
        while low + 1 < self.pmf.len() && cut + self.pmf[low] < TAIL {
            cut += self.pmf[low];
            low += 1;
        }
        let (mut high, mut top) = (self.pmf.len(), 0.0);
        while high > low + 1 && top + self.pmf[high - 1] < TAIL {
            top += self.pmf[high - 1];
            high -= 1;
        }
        self.pmf.truncate(high);
        self.pmf.drain(..low);
        self.pmf[0] += cut;
        self.lo += low as i64;
        self.infinity += top;
        self
    }

    /// `delta` at `epsilon`.
    pub fn delta(&self, epsilon: f64) -> f64 {
        let mut d = self.infinity;
        for (i, &p) in self.pmf.iter().enumerate() {
            let loss = (self.lo + i as i64) as f64 * self.interval;
            if loss > epsilon {
                d -= p * (epsilon - loss).exp_m1();
            }
        }
        d.min(1.0)
    }

    /// The smallest `epsilon >= 0` with `delta(epsilon) <= delta`; infinite when the mass at
    /// infinite loss alone exceeds `delta`.
    pub fn epsilon(&self, delta: f64) -> f64 {
        if self.infinity > delta {
            return f64::INFINITY;
        }
        // From the top loss down: at the loss l_(k-1) below bucket k, with S the mass of buckets
        // k.. and T = sum of p_i e^(l_(k-1) - l_i) over them, delta(l_(k-1)) = inf + S - T.
        let step = (-self.interval).exp();
        let (mut s, mut t) = (0.0, 0.0);
        for k in (0..self.pmf.len()).rev() {
            s += self.pmf[k];
            t = (t + self.pmf[k]) * step;
            let below = (self.lo + k as i64 - 1) as f64 * self.interval;
            let d = self.infinity + s - t;
            if d > delta {
                // Within (l_(k-1), l_k]: inf + S - T e^(eps - l_(k-1)) = delta.
                let eps = below + ((self.infinity + s - delta) / t).ln();
                return eps.max(0.0);
            }
        }
        0.0
    }
}

/// Rounds of the Gaussian mechanism with noise multiplier `sigma`, Poisson-subsampled at rate
/// `q`: one entry of a ledger's history, which the PLD composes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaussianRounds {
    /// Sampling rate.
    pub q: f64,
    /// Noise multiplier.
    pub sigma: f64,
    /// How many rounds ran with these parameters.
    pub rounds: u64,
}

/// Epsilon at `delta` after `steps` rounds of the Gaussian mechanism with noise multiplier
/// `sigma`, Poisson-subsampled at rate `q`, by PLD with grid step `interval`: the larger of the
/// two directions of add/remove adjacency.
pub fn epsilon_for(
    q: f64,
    sigma: f64,
    steps: u64,
    delta: f64,
    interval: f64,
) -> Result<f64, Error> {
    epsilon_of(
        &[GaussianRounds {
            q,
            sigma,
            rounds: steps,
        }],
        delta,
        interval,
    )
}

/// Epsilon at `delta` after every run of `history` (rounds with different parameters compose by
/// convolution), by PLD with grid step `interval`; 0 when no round ran. Refused when a PLD would
/// hold more than [`MAX_POINTS`] grid points.
pub fn epsilon_of(history: &[GaussianRounds], delta: f64, interval: f64) -> Result<f64, Error> {
    epsilon_within(history, delta, interval, MAX_POINTS)
}

/// [`epsilon_of`] with at most `max_points` grid points in any PLD.
fn epsilon_within(
    history: &[GaussianRounds],
    delta: f64,
    interval: f64,
    max_points: usize,
) -> Result<f64, Error> {
    check_delta(delta)?;
    let runs: Vec<&GaussianRounds> = history.iter().filter(|r| r.rounds > 0).collect();
    // Without sampling the two directions are mirror images (x -> 1 - x): when no run samples,
    // the remove direction alone is the answer.
    let both = runs.iter().any(|r| r.q < 1.0);
    // `acc` composed with `rounds` runs of `one`.
    let join = |acc: Option<Pld>, one: &Pld, rounds: u64| -> Result<Pld, Error> {
        if one.pmf.len() > max_points {
            return Err(too_large(one.pmf.len() as f64));
        }
        let next = one.self_compose_within(rounds, max_points)?;
        match acc {
            None => Ok(next),
            Some(a) => a.compose_within(&next, max_points),
        }
    };
    let (mut remove, mut add): (Option<Pld>, Option<Pld>) = (None, None);
    for run in runs {
        let (r, a) = Pld::sampled_gaussian(run.q, run.sigma, interval)?;
        remove = Some(join(remove, &r, run.rounds)?);
        if both {
            add = Some(join(add, &a, run.rounds)?);
        }
    }
    let eps = |d: Option<Pld>| d.map_or(0.0, |d| d.epsilon(delta));
    Ok(eps(remove).max(eps(add)))
}

/// The exact epsilon of `steps` rounds of the Gaussian mechanism without sampling (`q = 1`):
/// they compose to one Gaussian mechanism with multiplier `sigma / sqrt(steps)`, whose delta is
/// `Phi(1 / (2 s) - eps s) - e^eps Phi(-1 / (2 s) - eps s)` (Balle and Wang 2018). Found by
/// bisection to 1e-12.
pub fn gaussian_epsilon(sigma: f64, steps: u64, delta: f64) -> Result<f64, Error> {
    check_positive("sigma", sigma)?;
    check_delta(delta)?;
    let s = sigma / (steps.max(1) as f64).sqrt();
    let d = |eps: f64| remove_delta(1.0, s, eps);
    if d(0.0) <= delta {
        return Ok(0.0);
    }
    let (mut lo, mut hi) = (0.0, 1.0);
    while d(hi) > delta {
        lo = hi;
        hi *= 2.0;
    }
    while hi - lo > 1e-12 * hi.max(1.0) {
        let mid = 0.5 * (lo + hi);
        if d(mid) > delta {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(hi)
}

fn too_large(points: f64) -> Error {
    Error::InvalidParameter {
        name: "pld grid points",
        value: points,
        expected: "a privacy loss distribution this accountant can hold: the epsilon is too \
                   large, or the noise too small, for its grid",
    }
}

/// The linear convolution of two mass functions, by FFT (products below zero from rounding are
/// set to zero).
fn convolve(a: &[f64], b: &[f64]) -> Vec<f64> {
    let len = a.len() + b.len() - 1;
    let size = len.next_power_of_two();
    let mut fa: Vec<(f64, f64)> = a.iter().map(|&x| (x, 0.0)).collect();
    fa.resize(size, (0.0, 0.0));
    fft(&mut fa, false);
    if std::ptr::eq(a, b) {
        for x in &mut fa {
            *x = mul(*x, *x);
        }
    } else {
        let mut fb: Vec<(f64, f64)> = b.iter().map(|&x| (x, 0.0)).collect();
        fb.resize(size, (0.0, 0.0));
        fft(&mut fb, false);
        for (x, y) in fa.iter_mut().zip(&fb) {
            *x = mul(*x, *y);
        }
    }
    fft(&mut fa, true);
    let scale = 1.0 / size as f64;
    fa.truncate(len);
    fa.into_iter()
        .map(|(re, _)| (re * scale).max(0.0))
        .collect()
}

fn mul(a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
    (a.0 * b.0 - a.1 * b.1, a.0 * b.1 + a.1 * b.0)
}

/// In-place iterative radix-2 FFT (`inverse`: conjugate twiddles, unscaled). `v.len()` is a
/// power of two.
fn fft(v: &mut [(f64, f64)], inverse: bool) {
    let n = v.len();
    if n < 2 {
        return;
    }
    let bits = n.trailing_zeros();
    for i in 0..n {
        let j = i.reverse_bits() >> (usize::BITS - bits);
        if j > i {
            v.swap(i, j);
        }
    }
    let sign = if inverse { 1.0 } else { -1.0 };
    let mut len = 2;
    while len <= n {
        let angle = sign * 2.0 * core::f64::consts::PI / len as f64;
        let half = len / 2;
        let twiddles: Vec<(f64, f64)> = (0..half)
            .map(|k| {
                let a = angle * k as f64;
                (a.cos(), a.sin())
            })
            .collect();
        for chunk in v.chunks_mut(len) {
            let (left, right) = chunk.split_at_mut(half);
            for ((x, y), w) in left.iter_mut().zip(right.iter_mut()).zip(&twiddles) {
                let t = mul(*y, *w);
                *y = (x.0 - t.0, x.1 - t.1);
                *x = (x.0 + t.0, x.1 + t.1);
            }
        }
        len *= 2;
    }
}

#[cfg(test)]
mod tests;
