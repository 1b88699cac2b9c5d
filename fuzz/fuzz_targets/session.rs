//! Round parameters a (possibly hostile) server sends: `SecaggSession::config` must refuse what
//! it cannot use, without panicking or allocating without bound.
#![no_main]

use fedagg_api::SecaggSession;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = serde_json::from_slice::<SecaggSession>(data) {
        // Keep the graph small enough to build in a fuzzing iteration.
        if s.n <= 4096 {
            let _ = s.config(16);
        }
    }
    if data.len() >= 16 {
        let word = |i: usize| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
        let s = SecaggSession {
            session_id: "00".repeat(32),
            n: word(0) % 4097,
            half_degree: Some(word(4) % 4097).filter(|_| data[15] & 1 == 1),
            graph_seed: "11".repeat(32),
            threshold: word(8) % 4097,
            modulus_bits: u32::from(data[12]),
        };
        let _ = s.config(usize::from(data[13]));
    }
});
