//! The operator's TOML configuration: parsed and validated, or refused with a message.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(c) = toml::from_str::<fedagg_server::Config>(text) {
            let _ = c.validate();
            let _ = c.storage();
        }
    }
});
