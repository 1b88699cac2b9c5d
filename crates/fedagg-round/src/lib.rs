//! fedagg's round engine, without IO: what a round is, apart from the network and the disk.
//!
//! The central choice is **write-ahead**: every change to a round is computed first, stored by the
//! shell, and only then applied. A submission is [`Round::check`]ed (validated and decoded,
//! nothing changes), the shell logs it as an [`Event`], then [`Round::apply`] records it. A
//! phase closure is [`Round::prepare_close`]d on copies, the shell stores it (an
//! [`Event::Close`], or the round's [`Ending`]), then [`Round::commit`] installs it. A failed
//! write therefore leaves the round exactly as it was, still completable. And since the engines
//! are deterministic in their logged events, [`Round::replay`] rebuilds a round after a restart
//! or on another replica.
//!
//! Time and randomness are parameters: `now_ms` is passed in, deadlines are data
//! ([`Deadline`]), and every draw (the cohort, the SecAgg session, DP noise) comes from the
//! caller's CSPRNG. Whole rounds, faults and deadlines therefore run in memory in tests.
//!
//! - [`spec`]: validation of a federation's spec.
//! - [`plan`]: cohort selection (uniform; Poisson for DP), the DP budget check, the SecAgg
//!   session.
//! - [`Round`]: one open round over the mode engines (SecAgg, Paillier or lattice, DP).
//! - [`ledger`]: a DP federation's privacy state (ledger, adaptive clip norm) as stored.
//!
//! ```
//! use fedagg_api::{FederationSpec, Mode, Phase, Role};
//! use fedagg_round::{plan, spec, Round, RoundId};
//! # fn main() -> Result<(), fedagg_round::RoundError> {
//! let spec = FederationSpec {
//!     name: "demo".into(),
//!     vector_len: 2,
//!     mode: Mode::Dp { clip: 1.0, noise_multiplier: 1.0, sampling_rate: 1.0,
//!                      epsilon_budget: 10.0, delta: 1e-5, adaptive_clip: None,
//!                      accountant: fedagg_api::Accountant::Rdp },
//!     min_clients: 3,
//!     max_clients: 10,
//!     phase_timeout_secs: 60,
//!     server_lr: 1.0,
//!     auto_rounds: false,
//!     roster_authority: None,
//!     scaffold: false,
//! };
//! spec::validate(&spec)?;
//! let ledger = spec::initial_ledger(&spec)?;
//! # use rand_core::SeedableRng;
//! let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1); // a CSPRNG the shell seeds from the OS
//! let params = plan::plan(&spec, vec![7, 8, 9], None, ledger.as_ref(), &mut rng)?;
//! let id = RoundId { federation_id: 1, round: 1, base_version: 0, opened_ms: 0 };
//! let mut round = Round::new(id, spec, params, None, ledger)?;
//! for participant in [7, 8, 9] {
//!     let member = round.member_of(Role::Participant, Some(participant))?;
//!     let update = fedagg_api::f32_bytes(&[0.5, -0.5]);
//!     let s = round.check(member, &update)?; // validate; the shell logs it here
//!     round.apply(s)?;
//! }
//! assert!(round.due(0)); // everyone answered
//! let closure = round.prepare_close(&mut rng, 10);
//! // The shell reads the base model and the server optimizer's stored state, and stores this.
//! let base = fedagg_round::Base { model: vec![0.0, 0.0], ..Default::default() };
//! let ending = round.ending(&closure, || Ok(base))?;
//! assert!(ending.is_some());
//! round.commit(closure)?;
//! assert_eq!(round.phase(), Phase::Done);
//! # Ok(()) }
//! ```

mod engine;
mod error;
pub mod ledger;
pub mod optimizer;
pub mod plan;
mod round;
pub mod spec;

pub use engine::{
    is_key_holder, key_holder_member, lattice_key, paillier_key, Finished, KEY_HOLDER, KEY_HOLDERS,
};
pub use error::{Result, RoundError};
pub use fedagg_api::Phase;
pub use plan::RoundParams;
pub use round::{
    ended_info, failure_record, Base, Closure, Deadline, Ending, Event, Round, RoundId, Submission,
};
