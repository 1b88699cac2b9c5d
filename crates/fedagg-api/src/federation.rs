//! Federations and their modes (roles, enrollment and rosters are in `enrollment`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Accountant, AdaptiveClipping, FrameKind, Phase};

/// The aggregation mode of a federation, with its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Mode {
    /// Bonawitz et al. secure aggregation (SecAgg+ graph when the cohort is large). The server
    /// sees only the sum of the survivors' quantized, weighted updates.
    Secagg {
        /// Quantization: each update value is clipped to `[-clip, clip]`.
        #[schema(exclusive_minimum = 0.0, maximum = 1e12)]
        clip: f64,
        /// Quantization levels T over `[-clip, clip]`.
        #[schema(minimum = 1, maximum = 16_777_216)]
        #[serde(deserialize_with = "crate::integer::de")]
        levels: u64,
        /// Largest client weight (for example its number of samples, capped).
        #[schema(minimum = 1, maximum = 4_194_304)]
        #[serde(deserialize_with = "crate::integer::de")]
        max_weight: u64,
        /// Expected fraction of clients that drop out (sizes the threshold and graph).
        #[schema(minimum = 0.0, exclusive_maximum = 1.0)]
        dropout_rate: f64,
        /// Fraction of clients that may collude with the server.
        #[schema(minimum = 0.0, exclusive_maximum = 1.0)]
        corrupt_fraction: f64,
        /// Do not trust the server to follow the protocol: members sign their advertised keys
        /// with their identities (from the roster the federation's `roster_authority` signs,
        /// which this requires) and run the consistency check before unmasking, and the
        /// threshold is sized for a server that lies about who dropped out.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        malicious_server: bool,
    },
    /// Packed Paillier encryption under a key held by the key holder, who decrypts only the sum.
    Paillier {
        /// Quantization clip bound.
        #[schema(exclusive_minimum = 0.0, maximum = 1e12)]
        clip: f64,
        /// Quantization levels T.
        #[schema(minimum = 1, maximum = 16_777_216)]
        #[serde(deserialize_with = "crate::integer::de")]
        levels: u64,
        /// Largest client weight.
        #[schema(minimum = 1, maximum = 4_194_304)]
        #[serde(deserialize_with = "crate::integer::de")]
        max_weight: u64,
    },
    /// Additive lattice (LWE) encryption under the key holder's key (`fedagg-lattice`); the
    /// server must be built with its `lattice` feature.
    Lattice {
        /// Quantization clip bound.
        #[schema(exclusive_minimum = 0.0, maximum = 1e12)]
        clip: f64,
        /// Quantization levels T.
        #[schema(minimum = 1, maximum = 16_777_216)]
        #[serde(deserialize_with = "crate::integer::de")]
        levels: u64,
        /// Largest client weight.
        #[schema(minimum = 1, maximum = 4_194_304)]
        #[serde(deserialize_with = "crate::integer::de")]
        max_weight: u64,
    },
    /// SecAgg with distributed DP: each participant clips its update in L2, rotates it, rounds
    /// it to integers and adds its share of discrete Gaussian noise before masking, so that the
    /// sum the server unmasks is already private (`fedagg_dp::ddg`, the distributed discrete
    /// Gaussian of Kairouz, Liu and Steinke). Charged to a budget, as `dp` is, by the RDP
    /// accountant (the PLD one covers the central Gaussian only). Updates are unweighted, and the
    /// model moves by the sum over the expected cohort.
    SecaggDp {
        /// L2 clipping bound C per client update.
        #[schema(exclusive_minimum = 0.0, maximum = 1e12)]
        clip: f64,
        /// Noise multiplier z: the noise of a sum of `min_clients` survivors (the fewest a round
        /// may aggregate) is that of N(0, (z C)^2) per coordinate; more survivors add more.
        #[schema(exclusive_minimum = 0.0, maximum = 1e6)]
        noise_multiplier: f64,
        /// Client sampling rate q used by the accountant (Poisson sampling of the cohort).
        #[schema(exclusive_minimum = 0.0, maximum = 1.0)]
        sampling_rate: f64,
        /// Total epsilon budget; a round that could exceed it does not open.
        #[schema(exclusive_minimum = 0.0)]
        epsilon_budget: f64,
        /// Delta of the (epsilon, delta) guarantee.
        #[schema(exclusive_minimum = 0.0, exclusive_maximum = 1.0)]
        delta: f64,
        /// Bits per coordinate of the modular sum (what each value costs on the wire).
        #[schema(minimum = 8, maximum = 62)]
        #[serde(deserialize_with = "crate::integer::de")]
        bits: u32,
        /// Expected fraction of clients that drop out (sizes the threshold and graph).
        #[schema(minimum = 0.0, exclusive_maximum = 1.0)]
        dropout_rate: f64,
        /// Fraction of clients that may collude with the server.
        #[schema(minimum = 0.0, exclusive_maximum = 1.0)]
        corrupt_fraction: f64,
        /// As in `secagg`: members sign their keys and run the consistency check.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        malicious_server: bool,
    },
    /// Plaintext updates, clipped and noised on the server (central DP), charged to a budget.
    /// Updates are unweighted (one clipped update is the sensitivity), and the model moves by the
    /// noised sum over the expected cohort, so the release says nothing of how many took part.
    Dp {
        /// L2 clipping bound C per client update.
        #[schema(exclusive_minimum = 0.0, maximum = 1e12)]
        clip: f64,
        /// Noise multiplier sigma: the sum gets N(0, (sigma C)^2) per coordinate.
        #[schema(exclusive_minimum = 0.0, maximum = 1e6)]
        noise_multiplier: f64,
        /// Client sampling rate q used by the accountant.
        #[schema(exclusive_minimum = 0.0, maximum = 1.0)]
        sampling_rate: f64,
        /// Total epsilon budget; a round that would exceed it does not open.
        #[schema(exclusive_minimum = 0.0)]
        epsilon_budget: f64,
        /// Delta of the (epsilon, delta) guarantee.
        #[schema(exclusive_minimum = 0.0, exclusive_maximum = 1.0)]
        delta: f64,
        /// Adaptive clipping: `clip` is then the initial clip norm, and after each round the
        /// norm moves towards a quantile of the updates' norms, released privately.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        adaptive_clip: Option<AdaptiveClipping>,
        /// The accountant whose epsilon the budget is enforced against (both are reported).
        #[serde(default, skip_serializing_if = "Accountant::is_rdp")]
        accountant: Accountant,
    },
}

impl Mode {
    /// Whether members run SecAgg against a server that may deviate from the protocol.
    pub fn malicious_server(&self) -> bool {
        matches!(
            self,
            Mode::Secagg {
                malicious_server: true,
                ..
            } | Mode::SecaggDp {
                malicious_server: true,
                ..
            }
        )
    }

    /// Whether rounds run SecAgg (with or without distributed DP).
    pub fn is_secagg(&self) -> bool {
        matches!(self, Mode::Secagg { .. } | Mode::SecaggDp { .. })
    }

    /// The client sampling rate of the modes with a privacy budget (their cohort is a Poisson
    /// sample at that rate, as the accountant assumes).
    pub fn sampling_rate(&self) -> Option<f64> {
        match *self {
            Mode::Dp { sampling_rate, .. } | Mode::SecaggDp { sampling_rate, .. } => {
                Some(sampling_rate)
            }
            _ => None,
        }
    }

    /// The epsilon a DP federation may spend in all (`None` outside the DP modes).
    pub fn epsilon_budget(&self) -> Option<f64> {
        match *self {
            Mode::Dp { epsilon_budget, .. } | Mode::SecaggDp { epsilon_budget, .. } => {
                Some(epsilon_budget)
            }
            _ => None,
        }
    }

    /// Whether a key holder decrypts the aggregate (Paillier and lattice).
    pub fn is_he(&self) -> bool {
        matches!(self, Mode::Paillier { .. } | Mode::Lattice { .. })
    }

    /// The SecAgg threat model of a SecAgg federation (the defaults' security and correctness
    /// levels, its corrupt fraction and dropout rate, and whether the server may lie), from which server and SDK both derive
    /// each round's graph and threshold; `None` in the other modes.
    pub fn threat_model(&self) -> Option<fedagg_secagg::ThreatModel> {
        match *self {
            Mode::Secagg {
                dropout_rate,
                corrupt_fraction,
                malicious_server,
                ..
            }
            | Mode::SecaggDp {
                dropout_rate,
                corrupt_fraction,
                malicious_server,
                ..
            } => Some(fedagg_secagg::ThreatModel {
                dropout_rate,
                corrupt_fraction,
                adversary: if malicious_server {
                    fedagg_secagg::Adversary::SemiMalicious
                } else {
                    fedagg_secagg::Adversary::Curious
                },
                ..fedagg_secagg::ThreatModel::default()
            }),
            _ => None,
        }
    }

    /// Short name: `secagg`, `secagg_dp`, `paillier`, `lattice` or `dp`.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Secagg { .. } => "secagg",
            Mode::SecaggDp { .. } => "secagg_dp",
            Mode::Paillier { .. } => "paillier",
            Mode::Lattice { .. } => "lattice",
            Mode::Dp { .. } => "dp",
        }
    }

    /// The frame kind a submission carries in `phase` of a round of this mode: the one table
    /// the round engine checks submissions against and the SDK encodes them with.
    pub fn submission_kind(&self, phase: Phase) -> FrameKind {
        match (self, phase) {
            (Mode::Secagg { .. } | Mode::SecaggDp { .. }, _) => FrameKind::Secagg,
            (Mode::Paillier { .. } | Mode::Lattice { .. }, Phase::Decrypt) => FrameKind::U64,
            (Mode::Paillier { .. }, _) => FrameKind::Paillier,
            (Mode::Lattice { .. }, _) => FrameKind::Lattice,
            (Mode::Dp { .. }, _) => FrameKind::F32,
        }
    }

    /// The frame kind of the server's message to a member in `phase` (its inbox): SecAgg's
    /// protocol messages, or the encrypted aggregate the key holder decrypts.
    pub fn inbox_kind(&self, phase: Phase) -> FrameKind {
        match (self, phase) {
            (Mode::Paillier { .. }, Phase::Decrypt) => FrameKind::Paillier,
            (Mode::Lattice { .. }, Phase::Decrypt) => FrameKind::Lattice,
            _ => self.submission_kind(phase),
        }
    }

    /// `(clip, levels, max_weight)` of the quantized modes; `None` for the DP modes.
    pub fn quantization(&self) -> Option<(f64, u64, u64)> {
        match *self {
            Mode::Secagg {
                clip,
                levels,
                max_weight,
                ..
            }
            | Mode::Paillier {
                clip,
                levels,
                max_weight,
            }
            | Mode::Lattice {
                clip,
                levels,
                max_weight,
            } => Some((clip, levels, max_weight)),
            Mode::Dp { .. } | Mode::SecaggDp { .. } => None,
        }
    }

    /// Quantization parameters of the quantized modes for `max_clients` contributions; `None`
    /// for DP, which sends floats.
    pub fn quant(&self, max_clients: u64) -> Option<Result<fedagg_quant::QuantParams, String>> {
        let (clip, levels, max_weight) = self.quantization()?;
        Some(
            fedagg_quant::QuantParams::with_minimal_modulus(clip, levels, max_weight, max_clients)
                .map_err(|e| e.to_string()),
        )
    }
}

/// What an operator asks for when creating a federation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FederationSpec {
    /// Human-readable name.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: String,
    /// Number of model parameters (the update length).
    #[schema(minimum = 1, maximum = 67_108_864)]
    #[serde(deserialize_with = "crate::integer::de")]
    pub vector_len: usize,
    /// Aggregation mode and its parameters.
    pub mode: Mode,
    /// A round fails if fewer contributions than this arrive (at least 3: with two, each
    /// contributor would learn the other's update).
    #[schema(minimum = 3, maximum = 100_000)]
    #[serde(deserialize_with = "crate::integer::de")]
    pub min_clients: u32,
    /// Largest cohort of a round (sizes quantization headroom).
    #[schema(minimum = 3, maximum = 100_000)]
    #[serde(deserialize_with = "crate::integer::de")]
    pub max_clients: u32,
    /// Deadline of each phase, in seconds, counted from the phase's start.
    #[schema(minimum = 1, maximum = 86_400)]
    #[serde(deserialize_with = "crate::integer::de")]
    pub phase_timeout_secs: u64,
    /// Server learning rate applied to the aggregated update.
    #[serde(default = "one")]
    #[schema(exclusive_minimum = 0.0, maximum = 1e6, default = 1.0)]
    pub server_lr: f64,
    /// Open the next round automatically when one ends.
    #[serde(default)]
    pub auto_rounds: bool,
    /// The enrollment authority's Ed25519 public key (64 hex digits): whoever holds its secret
    /// key (not the server) signs the roster of participants' identity keys, which members check
    /// before they trust another member's identity (`fedagg authority`, docs/threat-model.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub roster_authority: Option<String>,
    /// SCAFFOLD (Karimireddy et al. 2020): each update carries the participant's control-variate
    /// delta after its model delta, `2 * vector_len` values protected alike, and the server keeps
    /// and publishes the control variate `c` with each model. Fixed at creation.
    /// (Absent when false, so a spec from before it serializes, and fingerprints, as it did.)
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub scaffold: bool,
}

fn one() -> f64 {
    1.0
}

impl FederationSpec {
    /// The values a participant submits and the mode aggregates: the model update, followed under
    /// SCAFFOLD by the control-variate delta.
    pub fn update_len(&self) -> usize {
        if self.scaffold {
            2 * self.vector_len
        } else {
            self.vector_len
        }
    }

    /// Whether the key holders decrypt only a sum they verified: a Paillier or lattice
    /// federation with a `roster_authority`, whose participants sign their contributions
    /// ([`crate::contributions`]).
    pub fn verified_decryption(&self) -> bool {
        self.mode.is_he() && self.roster_authority.is_some()
    }

    /// The quantization both sides use (SecAgg and Paillier): headroom for `max_clients`
    /// contributions in the smallest modulus that holds them. An error for the DP modes.
    pub fn quant(&self) -> Result<fedagg_quant::QuantParams, String> {
        self.mode
            .quant(u64::from(self.max_clients))
            .unwrap_or_else(|| Err(format!("the {} mode is not quantized", self.mode.name())))
    }

    /// The distributed DP of a `secagg_dp` federation: scale, local noise and bits, a function
    /// of this spec alone, so that each participant derives them from the spec it pinned. The
    /// noise is calibrated for `min_clients` survivors, the fewest a round aggregates.
    pub fn ddg(&self) -> Result<fedagg_dp::ddg::DdgParams, String> {
        let Mode::SecaggDp {
            clip,
            noise_multiplier,
            bits,
            ..
        } = self.mode
        else {
            return Err(format!(
                "the {} mode has no distributed DP",
                self.mode.name()
            ));
        };
        fedagg_dp::ddg::DdgParams::new(
            self.update_len(),
            clip,
            noise_multiplier,
            bits,
            self.min_clients,
            self.max_clients,
        )
        .map_err(|e| e.to_string())
    }

    /// What SecAgg sums for this spec: `(values per member, modulus bits)`. The quantized update
    /// and its weight (SecAgg), or the rotated update padded to a power of two (SecAgg with
    /// distributed DP).
    pub fn secagg_vector(&self) -> Result<(usize, u32), String> {
        if let Mode::SecaggDp { .. } = self.mode {
            let ddg = self.ddg()?;
            return Ok((ddg.dim(), ddg.bits()));
        }
        let quant = self.quant()?;
        Ok((
            fedagg_quant::QuantParams::encoded_len(self.update_len()),
            quant.modulus().bits(),
        ))
    }
}

/// A federation as the server reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Federation {
    /// Identifier.
    pub id: i64,
    /// The spec it was created with.
    pub spec: FederationSpec,
    /// Version of the current global model (0 = initial).
    pub model_version: u64,
    /// The round in progress, if any.
    pub open_round: Option<u64>,
    /// Enrolled participants (contributors).
    pub participants: u32,
    /// Whether the key holder has published a public key (HE modes).
    pub has_public_key: bool,
    /// Privacy spent so far (DP modes).
    pub privacy: Option<PrivacySpent>,
    /// The server optimizer the next round applies (FedAvg with `server_lr` unless one was set).
    pub server_optimizer: crate::ServerOptimizer,
}

/// Spent privacy, as the accountants report it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PrivacySpent {
    /// Epsilon spent so far, by the accountant that enforces the budget.
    pub epsilon: f64,
    /// The accountant that enforces the budget.
    #[serde(default)]
    pub accountant: Accountant,
    /// Epsilon spent so far by the RDP accountant.
    pub epsilon_rdp: f64,
    /// Epsilon spent so far by the PLD accountant, when it enforces the budget (`dp` federations
    /// whose `accountant` is `pld`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epsilon_pld: Option<f64>,
    /// Delta.
    pub delta: f64,
    /// Budget.
    pub epsilon_budget: f64,
    /// Rounds charged.
    pub rounds: u64,
    /// The clip norm the next round uses (adaptive clipping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip: Option<f64>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn mode_json_is_tagged() {
        let m = Mode::Dp {
            clip: 1.0,
            noise_multiplier: 1.1,
            sampling_rate: 0.1,
            epsilon_budget: 8.0,
            delta: 1e-5,
            adaptive_clip: None,
            accountant: Accountant::Rdp,
        };
        let j = serde_json::to_string(&m).unwrap();
        assert!(j.starts_with(r#"{"kind":"dp""#), "{j}");
        assert_eq!(serde_json::from_str::<Mode>(&j).unwrap(), m);
    }

    #[test]
    fn frame_kinds_by_mode_and_phase() {
        let q = |kind: &str| -> Mode {
            serde_json::from_value(serde_json::json!({
                "kind": kind, "clip": 1.0, "levels": 16, "max_weight": 1,
                "dropout_rate": 0.1, "corrupt_fraction": 0.1,
                "noise_multiplier": 1.0, "sampling_rate": 1.0,
                "epsilon_budget": 1.0, "delta": 1e-5,
            }))
            .unwrap()
        };
        for phase in [
            Phase::AdvertiseKeys,
            Phase::ShareKeys,
            Phase::MaskedInput,
            Phase::Unmask,
        ] {
            assert_eq!(q("secagg").submission_kind(phase), FrameKind::Secagg);
            assert_eq!(q("secagg").inbox_kind(phase), FrameKind::Secagg);
        }
        for (mode, ct) in [
            ("paillier", FrameKind::Paillier),
            ("lattice", FrameKind::Lattice),
        ] {
            assert_eq!(q(mode).submission_kind(Phase::Submit), ct);
            assert_eq!(q(mode).inbox_kind(Phase::Decrypt), ct);
            assert_eq!(q(mode).submission_kind(Phase::Decrypt), FrameKind::U64);
        }
        assert_eq!(q("dp").submission_kind(Phase::Submit), FrameKind::F32);
    }
}
