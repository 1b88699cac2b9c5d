//! The server's side of training: the server optimizers applied to the aggregated update
//! (FedAvg, FedAvgM, FedAdam, FedYogi: `fedagg-optim`'s, the very code the service applies, so
//! the simulation takes the service's steps), SCAFFOLD's server control variate, and the
//! weighted mean of client deltas.

pub use fedagg_optim::{ServerOptimizer, ServerState};

/// SCAFFOLD's server control variate: `c += |S|/N * mean_i(delta c_i)`, by
/// [`fedagg_optim::scaffold_step`] on the deltas' sum, as the service takes it.
pub fn scaffold_server_update(c: &mut [f32], control_deltas: &[&[f32]], total_clients: usize) {
    if control_deltas.is_empty() {
        return;
    }
    let sum: Vec<f64> = (0..c.len())
        .map(|j| control_deltas.iter().map(|d| f64::from(d[j])).sum())
        .collect();
    fedagg_optim::scaffold_step(c, &sum, total_clients);
}

/// The weighted mean of client deltas (FedAvg weighting by sample count).
pub fn weighted_mean(deltas: &[(&[f32], usize)]) -> Vec<f32> {
    let len = deltas.first().map_or(0, |d| d.0.len());
    let total: f64 = deltas.iter().map(|d| d.1 as f64).sum();
    let mut out = vec![0f64; len];
    for (d, w) in deltas {
        let w = *w as f64 / total;
        for (o, &v) in out.iter_mut().zip(d.iter()) {
            *o += w * f64::from(v);
        }
    }
    out.into_iter().map(|v| v as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_mean_weights_by_samples() {
        let m = weighted_mean(&[(&[1.0, 0.0], 1), (&[4.0, 3.0], 2)]);
        assert_eq!(m, vec![3.0, 2.0]);
    }

    #[test]
    fn scaffold_server_control_moves_by_the_fraction_of_clients() {
        let mut c = vec![0.0f32; 2];
        // 2 of 10 clients report; c += (2/10) * mean = sum / 10.
        scaffold_server_update(&mut c, &[&[1.0, 2.0], &[3.0, 4.0]], 10);
        assert!(
            (c[0] - 0.4).abs() < 1e-7 && (c[1] - 0.6).abs() < 1e-7,
            "{c:?}"
        );
    }
}
