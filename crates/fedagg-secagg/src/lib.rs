//! Secure aggregation without IO: the protocol of Bonawitz et al. (CCS 2017) with double masking
//! and Shamir dropout recovery, over the sparse neighbour graphs of SecAgg+ (Bell et al., CCS 2020).
//!
//! **Central choice:** the client and server are state machines that take bytes in and hand bytes
//! out; they never touch a socket, a clock or ambient randomness (every RNG is a parameter). The
//! REST server, the SDK, the tests and the benchmarks therefore drive the very same code, and a
//! whole round runs in memory ([`sim`]).
//!
//! States are types, and each transition consumes the previous state:
//!
//! | round | client | server |
//! |---|---|---|
//! | 0 AdvertiseKeys | [`client::start`] -> [`client::ExpectKeyList`] | [`server::CollectingKeys`] |
//! | 1 ShareKeys | [`client::ExpectKeyList::share_keys`] -> [`client::ExpectShares`] | [`server::CollectingShares`] |
//! | 2 MaskedInputCollection | [`client::ExpectShares::mask`] -> [`client::ExpectUnmask`] | [`server::CollectingMasked`] |
//! | 3 ConsistencyCheck (optional) | [`client::ExpectUnmask::sign_consistency`] | [`server::CollectingSignatures`] |
//! | 4 Unmasking | [`client::ExpectUnmask::unmask`] | [`server::Unmasking`] -> [`server::Aggregate`] |
//!
//! The server calls `finish` on a state when every expected client answered or the phase deadline
//! (kept by the caller) passed; `finish` checks the thresholds and produces the messages of the next
//! phase, addressed per client.
//!
//! A whole round in memory, five clients, one dropping out after sharing its keys:
//!
//! ```
//! use std::{collections::BTreeMap, sync::Arc, time::Instant};
//! use fedagg_secagg::{sim::{run_round, DropPoint}, ClientId, Graph, Modulus, SessionConfig};
//! use rand_chacha::ChaCha20Rng;
//! use rand_core::{OsRng, SeedableRng};
//!
//! let mut rng = ChaCha20Rng::from_rng(OsRng).unwrap();
//! let mut session_id = [0u8; 32];
//! rand_core::RngCore::fill_bytes(&mut rng, &mut session_id);
//! let cfg = SessionConfig::new(
//!     session_id, Graph::complete(5)?, 3, Modulus::new(32)?, 2, None)?;
//! let inputs: Vec<Vec<u64>> = (0..5).map(|i| vec![i, 10 * i]).collect();
//! let drops = BTreeMap::from([(ClientId(2), DropPoint::AfterShareKeys)]);
//! let outcome = run_round(Arc::new(cfg), &inputs, &drops, None, None, &Instant::now, &mut rng);
//! let aggregate = outcome.result?;
//! assert_eq!(aggregate.sum, vec![0 + 1 + 3 + 4, 0 + 10 + 30 + 40]);
//! assert_eq!(aggregate.dropped_after_sharing, vec![ClientId(2)]);
//! # Ok::<(), fedagg_secagg::Error>(())
//! ```
//!
//! Arithmetic is in `Z_2^k` ([`fedagg_quant::Modulus`]); inputs come from
//! [`fedagg_quant::QuantParams`], which already refused any configuration that could overflow.
//!
//! Security notes:
//! - masks are AES-256-CTR streams keyed by HKDF-SHA256 of the full 256-bit seed or agreed key,
//!   salted with the session id and labelled with purpose and client ids ([`crypto`]);
//! - shares travel under ChaCha20-Poly1305 with a key bound to sender, recipient and session;
//! - a client never reveals both kinds of share for one peer: it refuses an unmask request that
//!   lists itself as dropped, an unknown client, a client twice, or one client both ways, and the
//!   server refuses masked inputs from clients it declared dropped;
//! - in malicious-server mode ([`SessionConfig::identities`]) advertised keys are signed with
//!   Ed25519 identity keys and the ConsistencyCheck round makes all honest clients agree on the
//!   survivor set before unmasking.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod client;
pub mod crypto;
pub mod error;
pub mod graph;
pub mod groups;
pub mod server;
pub mod shamir;
pub mod sim;
pub mod wire;

use core::fmt;

pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use error::{Error, Phase};
pub use fedagg_quant::Modulus;
pub use graph::{Adversary, Graph, GraphParams, ThreatModel};

/// A client's index in the session, `0..n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(pub u32);

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Largest vector length a session accepts (2^28 elements).
pub const MAX_VECTOR_LEN: usize = 1 << 28;

/// Everything both sides must agree on before round 0. The server publishes it; clients check it
/// (in particular that the threshold and graph match the threat model they accept).
#[derive(Debug, Clone)]
pub struct SessionConfig {
    session_id: [u8; 32],
    graph: Graph,
    threshold: usize,
    modulus: Modulus,
    vector_len: usize,
    identities: Option<Vec<VerifyingKey>>,
    /// Fewest survivors whose sum a member helps unmask (1: no floor beyond the threshold).
    min_survivors: usize,
}

impl SessionConfig {
    /// A session. `session_id` must be fresh and unpredictable per round (32 bytes from a CSPRNG);
    /// it salts every derived key. `threshold` is the number of shares needed to reconstruct a
    /// secret, `1 <= t <= neighbourhood size`. `identities`, when given (one Ed25519 key per client,
    /// indexed by id), turns on the malicious-server mode: signed keys and the ConsistencyCheck.
    pub fn new(
        session_id: [u8; 32],
        graph: Graph,
        threshold: usize,
        modulus: Modulus,
        vector_len: usize,
        identities: Option<Vec<VerifyingKey>>,
    ) -> Result<Self, Error> {
        let w = graph.neighbourhood_size();
        if threshold == 0 || threshold > w {
            return Err(Error::InvalidParameters(format!(
                "threshold {threshold} must lie in 1..={w} (the neighbourhood size)"
            )));
        }
        if vector_len == 0 || vector_len > MAX_VECTOR_LEN {
            return Err(Error::InvalidParameters(format!(
                "vector length {vector_len} must lie in 1..={MAX_VECTOR_LEN}"
            )));
        }
        if let Some(ids) = &identities {
            if ids.len() != graph.n() as usize {
                return Err(Error::InvalidParameters(format!(
                    "{} identity keys for {} clients",
                    ids.len(),
                    graph.n()
                )));
            }
        }
        Ok(SessionConfig {
            session_id,
            graph,
            threshold,
            modulus,
            vector_len,
            identities,
            min_survivors: 1,
        })
    }

    /// This session with a floor on the survivor sets a member helps unmask: it refuses to sign
    /// a consistency check over fewer survivors (the global set, against a malicious server),
    /// and, where the graph is complete, to answer an unmask request naming fewer. Distributed DP
    /// uses it: its noise covers sums of at least that many participants, whatever the threshold.
    pub fn with_min_survivors(mut self, min_survivors: usize) -> Self {
        self.min_survivors = min_survivors.max(1);
        self
    }

    /// The floor on the survivor sets a member helps unmask ([`Self::with_min_survivors`]).
    pub fn min_survivors(&self) -> usize {
        self.min_survivors
    }

    /// The session id.
    pub fn session_id(&self) -> &[u8; 32] {
        &self.session_id
    }
    /// The neighbour graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }
    /// Shares needed per secret.
    pub fn threshold(&self) -> usize {
        self.threshold
    }
    /// The modulus of the masked arithmetic.
    pub fn modulus(&self) -> Modulus {
        self.modulus
    }
    /// Elements per input vector.
    pub fn vector_len(&self) -> usize {
        self.vector_len
    }
    /// Identity keys (malicious-server mode), indexed by client id.
    pub fn identities(&self) -> Option<&[VerifyingKey]> {
        self.identities.as_deref()
    }
    fn identity(&self, c: ClientId) -> Option<&VerifyingKey> {
        self.identities.as_ref().and_then(|v| v.get(c.0 as usize))
    }
}
