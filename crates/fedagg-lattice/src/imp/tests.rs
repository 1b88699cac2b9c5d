//! The lattice backend's tests: the key format, exact sums, decryption against tfhe's own
//! expansion, and encryption across threads.

mod key_format {
    #![allow(clippy::unwrap_used)]
    use super::super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn a_public_key_read_back_encrypts_for_the_same_secret_key() {
        let quant = QuantParams::with_minimal_modulus(1.0, 1 << 10, 16, 8).unwrap();
        let params = LatticeParams::new(&quant).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let (sk, pk) = keygen(params, &mut rng);
        let bytes = pk.to_bytes();
        let back = PublicKey::from_bytes(&bytes, params).unwrap();
        assert_eq!(back.to_bytes(), bytes);
        let ct = back.encrypt(&[1, 2, 3], &mut rng).unwrap();
        assert_eq!(sk.decrypt(&ct), vec![1, 2, 3]);
        assert!(PublicKey::from_bytes(&bytes[..bytes.len() - 8], params).is_err());
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(PublicKey::from_bytes(&bad, params).is_err());
    }
}

mod sums {
    #![allow(clippy::unwrap_used)]
    use super::super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn params(max_clients: u64) -> LatticeParams {
        // T = 2^10, weights up to 16: 10 + 4 + log2(max_clients) bits.
        let q = QuantParams::with_minimal_modulus(1.0, 1 << 10, 16, max_clients).unwrap();
        LatticeParams::new(&q).unwrap()
    }

    #[test]
    fn sum_of_n_encrypted_vectors_decrypts_exactly() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let p = params(100);
        let (sk, pk) = keygen(p, &mut rng);
        let len = 2 * LWE_DIMENSION + 37;
        let max = (1u64 << 14) - 1; // one client's largest encoded value (2^10 x 16)
        let mut acc = pk.zeros(len);
        let mut want = vec![0u64; len];
        for client in 0..100u64 {
            let values: Vec<u64> = (0..len as u64)
                .map(|i| match client {
                    0 => max,
                    1 => 0,
                    _ => (i * 31 + client * 7) % (max + 1),
                })
                .collect();
            for (w, v) in want.iter_mut().zip(&values) {
                *w += v;
            }
            acc.add_assign(&pk.encrypt(&values, &mut rng).unwrap())
                .unwrap();
        }
        assert_eq!(sk.decrypt(&acc), want);
        // wire round trip
        let bytes = acc.to_bytes();
        assert_eq!(bytes.len(), 12 + 8 * (3 * LWE_DIMENSION + len));
        assert!(CiphertextVector::from_bytes(&bytes, len) == Ok(acc.clone()));
        assert!(CiphertextVector::from_bytes(&bytes, len + 1).is_err());
        assert!(CiphertextVector::from_bytes(&bytes[1..], len).is_err());
    }

    /// tfhe's own route, the oracle for [`SecretKey::decrypt`]: expand each compact list to full
    /// LWE ciphertexts and decrypt those.
    fn decrypt_by_expansion(sk: &SecretKey, ct: &CiphertextVector) -> Vec<u64> {
        let shift = sk.params.delta_shift();
        let mut out = Vec::new();
        for chunk in &ct.chunks {
            let count = chunk.lwe_ciphertext_count();
            let mut expanded = LweCiphertextList::new(
                0u64,
                LweDimension(LWE_DIMENSION).to_lwe_size(),
                count,
                CiphertextModulus::new_native(),
            );
            expand_lwe_compact_ciphertext_list(&mut expanded, chunk);
            let mut pts = PlaintextList::new(0u64, PlaintextCount(count.0));
            decrypt_lwe_ciphertext_list(&sk.key, &expanded, &mut pts);
            out.extend(pts.iter().map(|p| {
                (p.0.wrapping_add(1u64 << (shift - 1)) >> shift) & ((1u64 << sk.params.bits) - 1)
            }));
        }
        out
    }

    #[test]
    fn decryption_from_the_compact_list_equals_tfhes_expansion() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let p = params(100);
        let (sk, pk) = keygen(p, &mut rng);
        // Sums, so the noise is well away from zero; a full list and a short one.
        let len = LWE_DIMENSION + 5;
        let mut acc = pk.zeros(len);
        for _ in 0..3 {
            let values: Vec<u64> = (0..len)
                .map(|_| rng.next_u64() >> (64 - p.bits()))
                .collect();
            acc.add_assign(&pk.encrypt(&values, &mut rng).unwrap())
                .unwrap();
        }
        assert_eq!(sk.decrypt(&acc), decrypt_by_expansion(&sk, &acc));
        // Arbitrary words too (what a faulty server could send): the same phase, bit for bit.
        let noise: Vec<u8> = (0..acc.to_bytes().len() - 12)
            .map(|_| rng.next_u32() as u8)
            .collect();
        let bytes = [&acc.to_bytes()[..12], &noise[..]].concat();
        let garbage = CiphertextVector::from_bytes(&bytes, len).unwrap();
        assert_eq!(sk.decrypt(&garbage), decrypt_by_expansion(&sk, &garbage));
    }

    /// The encryption uses tfhe's NTT convolution for the binary `r` (its re-randomization
    /// routine); it must give exactly tfhe's standard compact encryption from the same generator.
    #[test]
    fn the_ntt_encryption_equals_tfhes_standard_one() {
        let mut rng = ChaCha20Rng::seed_from_u64(10);
        let p = params(10);
        let (_, pk) = keygen(p, &mut rng);
        for count in [1usize, 100, LWE_DIMENSION] {
            let encoded = PlaintextList::from_container(
                (0..count as u64).map(|i| i << 40).collect::<Vec<u64>>(),
            );
            let encrypt = |fast: bool| {
                let mut stream = ChaCha20Rng::seed_from_u64(count as u64);
                let mut seeder = RngSeeder(&mut stream);
                let mut gen = EncryptionRandomGenerator::<DefaultRandomGenerator>::new(
                    seeder.seed(),
                    &mut seeder,
                );
                let mut out = LweCompactCiphertextList::new(
                    0u64,
                    LweDimension(LWE_DIMENSION).to_lwe_size(),
                    LweCiphertextCount(count),
                    CiphertextModulus::new_native(),
                );
                let f = if fast {
                    encrypt_compact
                } else {
                    encrypt_lwe_compact_ciphertext_list_with_compact_public_key
                };
                f(
                    &pk.pk,
                    &mut out,
                    &encoded,
                    noise(),
                    noise(),
                    gen.noise_generator_mut(),
                );
                out
            };
            assert!(encrypt(true) == encrypt(false), "{count} values");
        }
    }

    #[test]
    fn encryption_on_any_number_of_threads_is_the_same() {
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let p = params(10);
        let (sk, pk) = keygen(p, &mut rng);
        let values: Vec<u64> = (0..3 * LWE_DIMENSION as u64 + 11)
            .map(|i| i % (1 << 10))
            .collect();
        let one = pk
            .encrypt_on(&values, &mut ChaCha20Rng::seed_from_u64(9), 1)
            .unwrap();
        for threads in [2, 3, 8] {
            let many = pk
                .encrypt_on(&values, &mut ChaCha20Rng::seed_from_u64(9), threads)
                .unwrap();
            assert!(many == one, "{threads} threads");
        }
        assert_eq!(sk.decrypt(&one), values);
    }

    #[test]
    fn ciphertexts_hide_the_values_from_other_keys() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let p = params(10);
        let (sk, pk) = keygen(p, &mut rng);
        let (other, _) = keygen(p, &mut rng);
        let values: Vec<u64> = (0..300).map(|i| i % 97).collect();
        let ct = pk.encrypt(&values, &mut rng).unwrap();
        assert_eq!(sk.decrypt(&ct), values);
        let wrong = other.decrypt(&ct);
        let agree = wrong.iter().zip(&values).filter(|(a, b)| a == b).count();
        assert!(
            agree < 10,
            "{agree} of 300 values readable under another key"
        );
        // Two encryptions of the same values differ.
        assert!(pk.encrypt(&values, &mut rng).unwrap() != ct);
    }

    #[test]
    fn budget_and_input_checks() {
        // 2^16 levels, 256 weight, 1000 clients: 34 bits, too wide for the noise bound.
        let q = QuantParams::with_minimal_modulus(1.0, 1 << 16, 256, 1000).unwrap();
        assert!(matches!(LatticeParams::new(&q), Err(Error::NoiseBudget(_))));
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let p = params(10);
        let (_, pk) = keygen(p, &mut rng);
        assert_eq!(
            pk.encrypt(&[0, 1 << p.bits()], &mut rng).err(),
            Some(Error::ValueTooLarge { index: 1 })
        );
        let mut a = pk.zeros(3);
        assert!(a.add_assign(&pk.zeros(4)).is_err());
    }
}
