//! Round parameters a (possibly hostile) server sends, as the SDK reads them:
//! `SecaggSession::verified_config` against a pinned spec must refuse what differs from it,
//! without panicking or allocating without bound (any `n`: the pin bounds it before a graph is
//! built). `SecaggSession::config` alone, which trusts `n`, is fuzzed with `n` bounded.
#![no_main]

use std::sync::OnceLock;

use fedagg_api::{FederationSpec, Mode, SecaggSession};
use libfuzzer_sys::fuzz_target;

fn pinned() -> &'static FederationSpec {
    static SPEC: OnceLock<FederationSpec> = OnceLock::new();
    SPEC.get_or_init(|| FederationSpec {
        name: "fuzz".into(),
        vector_len: 16,
        mode: Mode::Secagg {
            clip: 1.0,
            levels: 1 << 16,
            max_weight: 100,
            dropout_rate: 0.1,
            corrupt_fraction: 0.05,
            malicious_server: false,
        },
        min_clients: 3,
        max_clients: 1000,
        phase_timeout_secs: 60,
        server_lr: 1.0,
        auto_rounds: false,
        roster_authority: None,
        scaffold: false,
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = serde_json::from_slice::<SecaggSession>(data) {
        let _ = s.verified_config(pinned(), None);
        // Keep the graph small enough to build in a fuzzing iteration.
        if s.n <= 4096 {
            let _ = s.config(16);
        }
    }
    if data.len() >= 16 {
        let word = |i: usize| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
        let s = SecaggSession {
            session_id: "00".repeat(32),
            n: word(0),
            half_degree: Some(word(4) % 4097).filter(|_| data[15] & 1 == 1),
            graph_seed: "11".repeat(32),
            threshold: word(8) % 4097,
            modulus_bits: u32::from(data[12]),
            cohort: Vec::new(),
            identities: Vec::new(),
        };
        let _ = s.verified_config(pinned(), None);
        if s.n <= 4096 {
            let _ = s.config(usize::from(data[13]));
        }
    }
});
