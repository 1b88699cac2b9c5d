//! Vector bodies as the server and the SDK decode them: the frame header, then f32 or u64
//! payloads, the signed contributions a key holder downloads; and the JSON bodies of the
//! control routes.
#![no_main]

use fedagg_api::{f32_values, u64_values, Frame, FrameKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for round in [0, 1, u64::MAX] {
        if let Ok((kind, payload)) = Frame::decode_any(data, round) {
            let n = payload.len() / 4;
            let _ = f32_values(payload, n);
            let _ = u64_values(payload, payload.len() / 8);
            let _ = Frame::decode(data, kind, round).expect("decode agrees with decode_any");
        }
    }
    let _ = Frame::decode(data, FrameKind::F32, 1);
    if let Ok(entries) = fedagg_api::contributions::decode_contributions(data, 16, 1 << 16) {
        assert_eq!(fedagg_api::contributions::encode_contributions(&entries), data);
    }
    let _ = fedagg_api::contributions::split_signed(data);
    let _ = serde_json::from_slice::<fedagg_api::FederationSpec>(data)
        .map(|spec| fedagg_round::spec::validate(&spec));
    let _ = serde_json::from_slice::<fedagg_api::RoundInfo>(data);
    let _ = serde_json::from_slice::<fedagg_api::EnrollmentCodeRequest>(data);
    let _ = serde_json::from_slice::<fedagg_api::PublicKeyBody>(data)
        .map(|k| k.paillier.map(|t| fedagg_round::paillier_key(&t)));
});
