//! SecAgg messages from a peer: the server's checks of a client's round-0 message, the
//! client's decoding of the server's key list, a masked input, and the message-type peek.
#![no_main]

use std::sync::Arc;

use fedagg_quant::Modulus;
use fedagg_secagg::server::CollectingKeys;
use fedagg_secagg::{client, wire, ClientId, Graph, SessionConfig};
use libfuzzer_sys::fuzz_target;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn session() -> Arc<SessionConfig> {
    let graph = Graph::complete(5).expect("graph");
    let modulus = Modulus::new(20).expect("modulus");
    Arc::new(SessionConfig::new([7; 32], graph, 3, modulus, 4, None).expect("session"))
}

fuzz_target!(|data: &[u8]| {
    let cfg = session();
    let _ = wire::peek_kind(data);
    let _ = wire::decode_masked_input(&cfg, data);
    let keys = CollectingKeys::new(Arc::clone(&cfg));
    let _ = keys.check(
        ClientId(data.first().copied().unwrap_or(0) as u32 % 6),
        data,
    );
    // A client that advertised its keys, reading a key list the server sent.
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let (state, _) = client::start(Arc::clone(&cfg), ClientId(0), None, &mut rng).expect("start");
    let _ = state.share_keys(data, &mut rng);
});
