//! A DP federation's stored privacy state (the accountant's ledger and the clip norm), and a
//! round's stored parameters: refused when damaged, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(state) = fedagg_round::ledger::from_text(text) {
            let _ = fedagg_round::ledger::privacy(&state);
        }
        let _ = fedagg_round::RoundParams::from_text(text);
    }
});
