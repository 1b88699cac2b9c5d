//! SecAgg / SecAgg+: `fedagg-secagg`'s server machine plus the messages waiting for each member.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use fedagg_api::{Aggregate, FederationSpec, Mode, Phase, SecaggSession};
use fedagg_dp::ddg::DdgParams;
use fedagg_quant::QuantParams;
use fedagg_secagg::server::{
    AfterMasking, CheckedKeys, CheckedMasked, CheckedShares, CheckedSignature, CheckedUnmask,
    CollectingKeys, CollectingMasked, CollectingShares, CollectingSignatures, Outbox, Unmasking,
};
use fedagg_secagg::wire::Kind;
use fedagg_secagg::{ClientId, SessionConfig};

use super::{Finished, Step};
use crate::error::{from_secagg, Result, RoundError};
use crate::ledger::DpState;

enum State {
    Keys(CollectingKeys),
    Shares(CollectingShares),
    Masked(CollectingMasked),
    /// Against a malicious server: the survivors sign the survivor set.
    Signatures(CollectingSignatures),
    Unmask(Unmasking),
}

/// A checked SecAgg message, for the phase it was checked in.
pub(crate) enum Checked {
    Keys(CheckedKeys),
    Shares(CheckedShares),
    Masked(CheckedMasked),
    Signature(CheckedSignature),
    Unmask(CheckedUnmask),
}

/// The state after a closed phase, held until the closure is durable.
pub(crate) struct Next {
    state: State,
    outbox: Outbox,
}

/// How the unmasked sum becomes the round's update.
enum Decoder {
    /// Quantized, weighted updates: the weighted mean.
    Quant(QuantParams),
    /// Distributed DP: centre, unscale and rotate back the noisy sum, divide it by the expected
    /// cohort, and charge the ledger for the survivors actually in it.
    Ddg(Box<Ddg>),
}

struct Ddg {
    params: DdgParams,
    rotation_seed: [u8; 32],
    denominator: f64,
    sampling_rate: f64,
    state: DpState,
}

pub(crate) struct SecaggEngine {
    /// The federation's spec: the layout of its updates.
    spec: FederationSpec,
    decoder: Decoder,
    cfg: Arc<SessionConfig>,
    state: State,
    outbox: BTreeMap<u32, Vec<u8>>,
    submitted: BTreeSet<u32>,
    n: usize,
    min: usize,
}

impl SecaggEngine {
    /// The engine of a round of `spec` (SecAgg, or SecAgg with distributed DP, which needs the
    /// federation's privacy `ledger` and the round's `denominator`, its expected cohort).
    pub(crate) fn new(
        spec: &FederationSpec,
        session: &SecaggSession,
        ledger: Option<DpState>,
        denominator: Option<f64>,
        n: usize,
    ) -> Result<Self> {
        let cfg = Arc::new(session.config_for(spec).map_err(RoundError::Invalid)?);
        let decoder = match spec.mode {
            Mode::SecaggDp { sampling_rate, .. } => Decoder::Ddg(Box::new(Ddg {
                params: spec.ddg().map_err(RoundError::Invalid)?,
                rotation_seed: session.rotation_seed().map_err(RoundError::Invalid)?,
                denominator: denominator.ok_or_else(|| {
                    RoundError::Internal("a distributed DP round without its denominator".into())
                })?,
                sampling_rate,
                state: ledger.ok_or_else(|| {
                    RoundError::Internal("a distributed DP round without a ledger".into())
                })?,
            })),
            _ => Decoder::Quant(spec.quant().map_err(RoundError::Invalid)?),
        };
        let min = spec.min_clients as usize;
        Ok(SecaggEngine {
            spec: spec.clone(),
            decoder,
            state: State::Keys(CollectingKeys::new(Arc::clone(&cfg))),
            cfg,
            outbox: BTreeMap::new(),
            submitted: BTreeSet::new(),
            n,
            min,
        })
    }

    pub(crate) fn phase(&self) -> Phase {
        match self.state {
            State::Keys(_) => Phase::AdvertiseKeys,
            State::Shares(_) => Phase::ShareKeys,
            State::Masked(_) => Phase::MaskedInput,
            State::Signatures(_) => Phase::ConsistencyCheck,
            State::Unmask(_) => Phase::Unmask,
        }
    }

    /// The largest body the current phase reads: its own message, or any earlier phase's. A
    /// client whose accepted submission's answer was lost (a server restart) retries it, and
    /// must get its replay answer, not a 413, once the round has moved on.
    pub(crate) fn max_submission(&self) -> usize {
        let reached = match self.state {
            State::Keys(_) => 1,
            State::Shares(_) => 2,
            State::Masked(_) => 3,
            State::Signatures(_) => 4,
            State::Unmask(_) => 5,
        };
        [
            Kind::AdvertiseKeys,
            Kind::ShareKeys,
            Kind::MaskedInput,
            Kind::ConsistencySignature,
            Kind::UnmaskResponse,
        ][..reached]
            .iter()
            .map(|&kind| fedagg_secagg::wire::max_len(kind, &self.cfg))
            .max()
            .unwrap_or(0)
    }

    pub(crate) fn expected(&self) -> usize {
        match &self.state {
            State::Keys(_) => self.n,
            State::Shares(s) => s.expected().len(),
            State::Masked(s) => s.expected().len(),
            State::Signatures(s) => s.expected().len(),
            State::Unmask(s) => s.expected().len(),
        }
    }

    pub(crate) fn submitted(&self) -> &BTreeSet<u32> {
        &self.submitted
    }

    pub(crate) fn cohort(&self) -> usize {
        self.n
    }

    pub(crate) fn check(&self, member: u32, msg: &[u8]) -> Result<Checked> {
        let from = ClientId(member);
        match &self.state {
            State::Keys(s) => s.check(from, msg).map(Checked::Keys),
            State::Shares(s) => s.check(from, msg).map(Checked::Shares),
            State::Masked(s) => s.check(from, msg).map(Checked::Masked),
            State::Signatures(s) => s.check(from, msg).map(Checked::Signature),
            State::Unmask(s) => s.check(from, msg).map(Checked::Unmask),
        }
        .map_err(from_secagg)
    }

    pub(crate) fn apply(&mut self, member: u32, checked: Checked) -> Result<()> {
        match (&mut self.state, checked) {
            (State::Keys(s), Checked::Keys(c)) => s.apply(c),
            (State::Shares(s), Checked::Shares(c)) => s.apply(c),
            (State::Masked(s), Checked::Masked(c)) => s.apply(c),
            (State::Signatures(s), Checked::Signature(c)) => s.apply(c),
            (State::Unmask(s), Checked::Unmask(c)) => s.apply(c),
            _ => {
                return Err(RoundError::Internal(
                    "a submission checked in another phase".into(),
                ))
            }
        }
        self.submitted.insert(member);
        Ok(())
    }

    pub(crate) fn download(&self, member: u32) -> Option<&[u8]> {
        self.outbox.get(&member).map(Vec::as_slice)
    }

    pub(crate) fn prepare_close(&self) -> Result<Step<Next>, String> {
        let text = |e: fedagg_secagg::Error| e.to_string();
        let (state, outbox) = match &self.state {
            State::Keys(s) => {
                let (next, out) = s.finish().map_err(text)?;
                (State::Shares(next), out)
            }
            State::Shares(s) => {
                let (next, out) = s.finish().map_err(text)?;
                (State::Masked(next), out)
            }
            State::Masked(s) => match s.finish().map_err(text)? {
                AfterMasking::Unmasking(next, out) => (State::Unmask(next), out),
                AfterMasking::ConsistencyCheck(next, out) => (State::Signatures(next), out),
            },
            State::Signatures(s) => {
                let (next, out) = s.finish().map_err(text)?;
                (State::Unmask(next), out)
            }
            State::Unmask(s) => {
                let agg = s.finish().map_err(text)?;
                if agg.included.len() < self.min {
                    return Err(format!(
                        "{} inputs in the aggregate, the federation requires {}",
                        agg.included.len(),
                        self.min
                    ));
                }
                let participants = agg.included.len() as u32;
                let (aggregate, ledger) = match &self.decoder {
                    Decoder::Quant(quant) => (
                        self.spec
                            .decode_quantized(quant, &agg.sum, u64::from(participants))?,
                        None,
                    ),
                    Decoder::Ddg(ddg) => {
                        let (aggregate, state) = ddg.finish(&self.spec, &agg.sum, participants)?;
                        (aggregate, Some(state))
                    }
                };
                return Ok(Step::Finished(Finished {
                    update: aggregate.update,
                    control_sum: aggregate.control_sum,
                    participants,
                    ledger,
                }));
            }
        };
        Ok(Step::Next(Next { state, outbox }))
    }

    pub(crate) fn commit(&mut self, next: Next) {
        self.state = next.state;
        self.outbox = next.outbox.into_iter().map(|(c, m)| (c.0, m)).collect();
        self.submitted.clear();
    }
}

impl Ddg {
    /// The noisy mean of the survivors' sum, and the privacy state charged for it (on a copy).
    fn finish(
        &self,
        spec: &FederationSpec,
        sum: &[u64],
        survivors: u32,
    ) -> Result<(Aggregate, DpState), String> {
        let mut state = self.state.clone();
        let curve = self
            .params
            .rdp(survivors, self.sampling_rate, state.ledger.orders())
            .map_err(|e| e.to_string())?;
        state
            .ledger
            .charge_curve(&curve)
            .map_err(|e| format!("privacy budget: {e}"))?;
        let mean = self
            .params
            .decode_sum(sum, &self.rotation_seed, self.denominator)
            .map_err(|e| e.to_string())?;
        Ok((spec.split_mean(&mean, self.denominator)?, state))
    }
}
