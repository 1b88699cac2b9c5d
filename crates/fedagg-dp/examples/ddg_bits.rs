//! Bits per coordinate for distributed DP with the utility of central DP: for each bit width, the
//! variance of the distributed discrete Gaussian's mean over the central Gaussian's at the same
//! epsilon (1 = on par), from the parameters `fedagg_dp::ddg` derives.
//!
//! The central mechanism adds `N(0, (z C)^2)` to the sum of `n` clipped updates. The distributed
//! one, calibrated for `n` survivors, adds the same noise, plus the rounding errors (variance at
//! most 1/4 per participant and coordinate, in integer units), and its accountant charges the
//! rounded sensitivity, which is a little above `C s`: to spend the same epsilon it needs
//! `z' = z Delta / (C s)`, so its noise is larger by `(Delta / (C s))^2`. Both effects shrink
//! with the scale `s`, which the bits buy.
//!
//! `cargo run --release -p fedagg-dp --example ddg_bits -- [DIM] [CLIENTS]` (defaults 65536, 100:
//! 100 survivors, the cohort at most 1,000, z = 1).
#![allow(missing_docs)]

use fedagg_dp::ddg::DdgParams;

fn main() -> Result<(), fedagg_dp::Error> {
    let mut args = std::env::args().skip(1);
    let dim: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(65_536);
    let n: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let (clip, z) = (1.0, 1.0);
    println!(
        "d = {dim}, {n} survivors, cohort at most {}, z = {z}",
        10 * n
    );
    println!("bits  scale      rounded sensitivity / (C s)  variance over central");
    for bits in (10..=24).step_by(2) {
        match DdgParams::new(dim, clip, z, bits, n, 10 * n) {
            Ok(p) => {
                let s = p.scale();
                let inflation = p.sensitivity() / (clip * s);
                let noise = f64::from(n) * p.local_sigma_squared() / (s * s);
                let rounding = f64::from(n) / (4.0 * s * s);
                let central = (z * clip).powi(2);
                let ratio = (noise * inflation * inflation + rounding) / central;
                println!("{bits:>4}  {s:>9.3e}  {inflation:>27.4}  {ratio:>21.4}");
            }
            Err(e) => println!("{bits:>4}  {e}"),
        }
    }
    Ok(())
}
