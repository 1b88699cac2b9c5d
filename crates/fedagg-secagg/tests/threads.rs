//! The server's unmasking on several threads gives the same sum, bit for bit, as on one.

#![allow(clippy::unwrap_used)]

use fedagg_quant::Modulus;
use fedagg_secagg::crypto::{apply_masks, apply_masks_on, MaskStream};
use proptest::prelude::*;

fn streams(keys: &[[u8; 32]], subtract: &[bool]) -> Vec<MaskStream> {
    keys.iter()
        .zip(subtract)
        .map(|(k, s)| MaskStream::from_key(k, *s))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn any_number_of_threads_gives_the_one_thread_sum(
        keys in prop::collection::vec(any::<[u8; 32]>(), 0..12),
        subtract in prop::collection::vec(any::<bool>(), 12),
        start in prop::collection::vec(any::<u64>(), 1..3000),
        bits in prop::sample::select(vec![8u32, 17, 32, 45, 64]),
        threads in 1usize..5,
    ) {
        let modulus = Modulus::new(bits).unwrap();
        let start: Vec<u64> = start.iter().map(|x| x & modulus.mask()).collect();
        let mut one = start.clone();
        apply_masks(&mut one, &mut streams(&keys, &subtract), modulus);
        let mut many = start;
        apply_masks_on(&mut many, &mut streams(&keys, &subtract), modulus, threads);
        prop_assert_eq!(one, many);
    }
}
