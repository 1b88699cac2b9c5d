//! Validation of a federation's spec, before it is created.

use fedagg_api::{AdaptiveClipping, FederationSpec, Mode};
use fedagg_dp::Ledger;

use crate::error::{Result, RoundError};
use crate::ledger::DpState;

/// Why a server without the `lattice` feature refuses lattice federations.
#[cfg(not(feature = "lattice"))]
pub(crate) const NO_LATTICE: &str =
    "this server was built without the lattice mode (cargo feature `lattice`)";

pub use fedagg_api::{MAX_CLIENTS, MAX_PHASE_TIMEOUT_SECS};
use fedagg_api::{MAX_CLIP, MAX_LEVELS, MAX_NAME_CHARS, MAX_PARAMETER, MAX_WEIGHT};

/// Check a federation spec: every parameter in range, and the quantization, the SecAgg threat
/// model, the lattice noise budget or the DP parameters valid for its mode.
///
/// The ranges are exactly those the OpenAPI document states for `FederationSpec` (the bounds
/// are constants of `fedagg-api`), so a request the document calls valid is refused only for a
/// relation between fields (`min_clients <= max_clients`) or a mode's own constraint.
pub fn validate(spec: &FederationSpec) -> Result<()> {
    let bad = |s: String| Err(RoundError::Invalid(s));
    if spec.name.trim().is_empty() || spec.name.chars().count() > MAX_NAME_CHARS {
        return bad(format!(
            "name must be 1 to {MAX_NAME_CHARS} characters, not all whitespace"
        ));
    }
    if spec.vector_len == 0 || spec.vector_len > fedagg_api::MAX_VECTOR_LEN {
        return bad(format!(
            "vector_len {} must lie in 1..={}",
            spec.vector_len,
            fedagg_api::MAX_VECTOR_LEN
        ));
    }
    if spec.update_len() > fedagg_api::MAX_VECTOR_LEN {
        return bad(format!(
            "under SCAFFOLD an update carries 2 x vector_len = {} values, more than {}",
            spec.update_len(),
            fedagg_api::MAX_VECTOR_LEN
        ));
    }
    // With two inputs, each contributor learns the other's update from the aggregate.
    if spec.min_clients < fedagg_api::MIN_CLIENTS || spec.min_clients > spec.max_clients {
        return bad(format!(
            "min_clients {} must lie in {}..=max_clients ({})",
            spec.min_clients,
            fedagg_api::MIN_CLIENTS,
            spec.max_clients
        ));
    }
    if spec.max_clients > MAX_CLIENTS {
        return bad(format!("max_clients must be at most {MAX_CLIENTS}"));
    }
    if spec.phase_timeout_secs == 0 || spec.phase_timeout_secs > MAX_PHASE_TIMEOUT_SECS {
        return bad(format!(
            "phase_timeout_secs must lie in 1..={MAX_PHASE_TIMEOUT_SECS}"
        ));
    }
    if !(spec.server_lr > 0.0 && spec.server_lr <= MAX_PARAMETER) {
        return bad(format!("server_lr must lie in (0, {MAX_PARAMETER}]"));
    }
    if let Some(a) = &spec.roster_authority {
        fedagg_api::trust::identity_key(a)
            .map_err(|e| RoundError::Invalid(format!("roster_authority: {e}")))?;
    }
    if let Some((clip, levels, max_weight)) = spec.mode.quantization() {
        if !(clip > 0.0 && clip <= MAX_CLIP) {
            return bad(format!("clip must lie in (0, {MAX_CLIP}]"));
        }
        if !(1..=MAX_LEVELS).contains(&levels) {
            return bad(format!("levels must lie in 1..={MAX_LEVELS}"));
        }
        if !(1..=MAX_WEIGHT).contains(&max_weight) {
            return bad(format!("max_weight must lie in 1..={MAX_WEIGHT}"));
        }
    }
    if spec.mode.quantization().is_some() {
        spec.quant().map_err(RoundError::Invalid)?;
    }
    validate_mode(spec)
}

fn validate_mode(spec: &FederationSpec) -> Result<()> {
    let bad = |s: String| Err(RoundError::Invalid(s));
    match spec.mode {
        Mode::Secagg {
            dropout_rate,
            corrupt_fraction,
            ..
        } => validate_secagg(spec, dropout_rate, corrupt_fraction)?,
        Mode::SecaggDp {
            noise_multiplier,
            sampling_rate,
            epsilon_budget,
            delta,
            dropout_rate,
            corrupt_fraction,
            ..
        } => {
            validate_secagg(spec, dropout_rate, corrupt_fraction)?;
            validate_noise(noise_multiplier, sampling_rate, epsilon_budget, delta)?;
            spec.ddg().map_err(RoundError::Invalid)?;
        }
        Mode::Paillier { .. } => {}
        Mode::Lattice { .. } => {
            #[cfg(feature = "lattice")]
            fedagg_lattice::LatticeParams::new(&spec.quant().map_err(RoundError::Invalid)?)
                .map_err(|e| RoundError::Invalid(e.to_string()))?;
            #[cfg(not(feature = "lattice"))]
            return bad(NO_LATTICE.into());
        }
        Mode::Dp {
            clip,
            noise_multiplier,
            sampling_rate,
            epsilon_budget,
            delta,
            adaptive_clip,
            accountant,
        } => {
            if !(clip > 0.0 && clip <= MAX_CLIP) {
                return bad(format!("clip must lie in (0, {MAX_CLIP}]"));
            }
            validate_noise(noise_multiplier, sampling_rate, epsilon_budget, delta)?;
            if let Some(a) = adaptive_clip {
                validate_adaptive(&a, noise_multiplier)?;
            }
            if accountant == fedagg_api::Accountant::Pld {
                fedagg_dp::pld::fits(sampling_rate, noise_multiplier).map_err(|e| {
                    RoundError::Invalid(format!(
                        "the pld accountant cannot hold a round at this noise_multiplier and \
                         sampling_rate ({e}): raise the noise, or use rdp"
                    ))
                })?;
            }
        }
    }
    Ok(())
}

fn validate_secagg(spec: &FederationSpec, dropout_rate: f64, corrupt_fraction: f64) -> Result<()> {
    let bad = |s: String| Err(RoundError::Invalid(s));
    for (name, v) in [
        ("dropout_rate", dropout_rate),
        ("corrupt_fraction", corrupt_fraction),
    ] {
        if !(0.0..1.0).contains(&v) {
            return bad(format!("{name} {v} must lie in [0, 1)"));
        }
    }
    // The graph and threshold are derived for each round's cohort, by the server and, from
    // their pinned spec, by the members; here the rates only need to be meaningful.
    if spec.mode.malicious_server() && spec.roster_authority.is_none() {
        return bad(
            "malicious_server needs a roster_authority: the key that signs the members' \
             identities, which the server must not hold"
                .into(),
        );
    }
    Ok(())
}

/// The noise and the budget of the DP modes.
fn validate_noise(
    noise_multiplier: f64,
    sampling_rate: f64,
    epsilon_budget: f64,
    delta: f64,
) -> Result<()> {
    let bad = |s: String| Err(RoundError::Invalid(s));
    if !(noise_multiplier > 0.0 && noise_multiplier <= MAX_PARAMETER) {
        return bad(format!("noise_multiplier must lie in (0, {MAX_PARAMETER}]"));
    }
    if !(sampling_rate > 0.0 && sampling_rate <= 1.0) {
        return bad("sampling_rate must lie in (0, 1]".into());
    }
    Ledger::new(epsilon_budget, delta)
        .map(drop)
        .map_err(|e| RoundError::Invalid(e.to_string()))
}

fn validate_adaptive(a: &AdaptiveClipping, noise_multiplier: f64) -> Result<()> {
    let bad = |s: String| Err(RoundError::Invalid(s));
    if !(a.target_quantile > 0.0 && a.target_quantile < 1.0) {
        return bad("adaptive_clip.target_quantile must lie in (0, 1)".into());
    }
    if !(a.learning_rate > 0.0 && a.learning_rate <= 10.0) {
        return bad("adaptive_clip.learning_rate must lie in (0, 10]".into());
    }
    if !(a.count_stddev > 0.0 && a.count_stddev <= MAX_PARAMETER) {
        return bad(format!(
            "adaptive_clip.count_stddev must lie in (0, {MAX_PARAMETER}]"
        ));
    }
    fedagg_dp::adaptive::update_noise_multiplier(noise_multiplier, a.count_stddev)
        .map(drop)
        .map_err(|_| {
            RoundError::Invalid(format!(
                "noise_multiplier {noise_multiplier} must be below 2 adaptive_clip.count_stddev \
                 ({}): the count release is paid for out of the round's noise",
                2.0 * a.count_stddev
            ))
        })
}

/// The privacy state a new federation starts with (DP modes), or `None`: an empty ledger, and
/// with adaptive clipping the initial clip norm.
pub fn initial_ledger(spec: &FederationSpec) -> Result<Option<DpState>> {
    match spec.mode {
        Mode::SecaggDp {
            epsilon_budget,
            delta,
            ..
        } => Ledger::new(epsilon_budget, delta)
            .map(|ledger| Some(DpState { ledger, clip: None }))
            .map_err(|e| RoundError::Invalid(e.to_string())),
        Mode::Dp {
            epsilon_budget,
            delta,
            clip,
            adaptive_clip,
            accountant,
            ..
        } => Ledger::with_accountant(epsilon_budget, delta, accountant.into())
            .map(|ledger| {
                Some(DpState {
                    ledger,
                    clip: adaptive_clip.map(|_| clip),
                })
            })
            .map_err(|e| RoundError::Invalid(e.to_string())),
        _ => Ok(None),
    }
}
