//! The on-disk key format: small text files, one field per line, integers in lowercase hex.
//!
//! ```text
//! fedagg-paillier-public-key v1        fedagg-paillier-private-key v1
//! n <hex>                              n <hex>
//! hs <hex>                             hs <hex>
//! mask-bits <hex>  (a subgroup key's   p <hex>
//!                   only)
//!                                      q <hex>
//!                                      subgroup-p <hex>   (a subgroup key's
//!                                      subgroup-q <hex>    orders only)
//! ```
//!
//! A threshold key ([`crate::threshold`]) has a public file, which the service stores and
//! participants pin, and one share file per holder, which holds the public lines too:
//!
//! ```text
//! fedagg-paillier-threshold-key v1     fedagg-paillier-key-share v1
//! n <hex>                              index <hex>
//! hs <hex>                             share <hex>
//! threshold <hex>                      n <hex>
//! v <hex>                              ... (the threshold key's lines)
//! vk <hex>   (one per holder)
//! ```
//!
//! Parsing checks the header, every field's presence and order, and the key's consistency
//! (`p q = n`, `hs` a unit, a share matching its verification key), and rejects anything else.

use num_bigint::BigUint;
use zeroize::Zeroizing;

use crate::threshold::{KeyShare, ThresholdKey, MAX_HOLDERS};
use crate::{Error, PrivateKey, PublicKey};

const PUBLIC_HEADER: &str = "fedagg-paillier-public-key v1";
const PRIVATE_HEADER: &str = "fedagg-paillier-private-key v1";
const THRESHOLD_HEADER: &str = "fedagg-paillier-threshold-key v1";
const SHARE_HEADER: &str = "fedagg-paillier-key-share v1";
/// Largest key file accepted (an 8192-bit private key is under 6 KiB; a share file of a
/// 16-holder 8192-bit threshold key under 80 KiB).
pub const MAX_KEY_FILE: usize = 96 * 1024;

fn field(line: Option<&str>, name: &str) -> Result<BigUint, Error> {
    let line = line.ok_or_else(|| Error::Malformed(format!("missing field {name}")))?;
    let hex = line
        .strip_prefix(name)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or_else(|| Error::Malformed(format!("expected field {name}")))?;
    if hex.is_empty() || hex.len() > 4096 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Malformed(format!("field {name} is not hex")));
    }
    BigUint::parse_bytes(hex.as_bytes(), 16)
        .ok_or_else(|| Error::Malformed(format!("field {name} is not hex")))
}

fn lines(text: &str, header: &str) -> Result<Vec<String>, Error> {
    if text.len() > MAX_KEY_FILE {
        return Err(Error::Malformed("key file too large".into()));
    }
    let mut it = text.lines();
    if it.next() != Some(header) {
        return Err(Error::Malformed(format!("expected a '{header}' file")));
    }
    Ok(it
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect())
}

impl PublicKey {
    /// The public key file's text.
    pub fn to_text(&self) -> String {
        let mut text = format!("{PUBLIC_HEADER}\nn {:x}\nhs {:x}\n", self.n(), self.hs());
        if !self.standard_masks() {
            text.push_str(&format!("mask-bits {:x}\n", self.mask_bits()));
        }
        text
    }

    /// Parse a public key file.
    pub fn from_text(text: &str) -> Result<Self, Error> {
        let l = lines(text, PUBLIC_HEADER)?;
        if l.len() != 2 && l.len() != 3 {
            return Err(Error::Malformed(
                "public key file has extra or missing lines".into(),
            ));
        }
        let mut it = l.iter().map(String::as_str);
        let n = field(it.next(), "n")?;
        let hs = field(it.next(), "hs")?;
        let key = PublicKey::from_parts(n, hs)?;
        if l.len() == 2 {
            return Ok(key);
        }
        let bits = u64::try_from(field(it.next(), "mask-bits")?)
            .map_err(|_| Error::Malformed("mask-bits is too large".into()))?;
        let key = key.with_mask_bits(bits)?;
        if key.standard_masks() {
            // One text per key: the standard length is not written.
            return Err(Error::Malformed(
                "mask-bits repeats the standard length".into(),
            ));
        }
        Ok(key)
    }
}

/// Whether `text` is a threshold key's public file (rather than a single key holder's key).
pub fn is_threshold_key(text: &str) -> bool {
    text.lines().next() == Some(THRESHOLD_HEADER)
}

/// Whether `text` is a holder's share of a threshold key (by its first line).
pub fn is_key_share(text: &str) -> bool {
    text.lines().next() == Some(SHARE_HEADER)
}

impl ThresholdKey {
    /// The threshold key's public file.
    pub fn to_text(&self) -> String {
        format!("{THRESHOLD_HEADER}\n{}", self.body())
    }

    fn body(&self) -> String {
        let pk = self.public();
        let mut s = format!(
            "n {:x}\nhs {:x}\nthreshold {:x}\nv {:x}\n",
            pk.n(),
            pk.hs(),
            self.threshold(),
            self.v()
        );
        for vk in self.verification_keys() {
            s.push_str(&format!("vk {vk:x}\n"));
        }
        s
    }

    /// Parse a threshold key's public file.
    pub fn from_text(text: &str) -> Result<Self, Error> {
        Self::from_lines(&lines(text, THRESHOLD_HEADER)?)
    }

    fn from_lines(l: &[String]) -> Result<Self, Error> {
        let holders = l.len().saturating_sub(4);
        if !(2..=usize::from(MAX_HOLDERS)).contains(&holders) {
            return Err(Error::Malformed(
                "threshold key file has extra or missing lines".into(),
            ));
        }
        let mut it = l.iter().map(String::as_str);
        let n = field(it.next(), "n")?;
        let hs = field(it.next(), "hs")?;
        let threshold = small(field(it.next(), "threshold")?)?;
        let v = field(it.next(), "v")?;
        let vks = it
            .map(|line| field(Some(line), "vk"))
            .collect::<Result<Vec<_>, _>>()?;
        ThresholdKey::from_parts(PublicKey::from_parts(n, hs)?, threshold, v, vks)
    }
}

fn small(x: BigUint) -> Result<u16, Error> {
    u16::try_from(x).map_err(|_| Error::Malformed("a count is too large".into()))
}

impl KeyShare {
    /// A holder's share file (zeroized when dropped).
    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "{SHARE_HEADER}\nindex {:x}\nshare {:x}\n{}",
            self.index(),
            self.secret(),
            self.key().body()
        ))
    }

    /// Parse a holder's share file (checked against its verification key).
    pub fn from_text(text: &str) -> Result<Self, Error> {
        let l = Zeroizing::new(lines(text, SHARE_HEADER)?);
        let mut it = l.iter().map(String::as_str);
        let index = small(field(it.next(), "index")?)?;
        let share = field(it.next(), "share")?;
        let key = ThresholdKey::from_lines(l.get(2..).unwrap_or_default())?;
        KeyShare::from_parts(key, index, share)
    }
}

impl PrivateKey {
    /// The private key file's text (zeroized when dropped).
    pub fn to_text(&self) -> Zeroizing<String> {
        let (p, q) = self.primes();
        let pk = self.public();
        let mut text = Zeroizing::new(format!(
            "{PRIVATE_HEADER}\nn {:x}\nhs {:x}\np {p:x}\nq {q:x}\n",
            pk.n(),
            pk.hs()
        ));
        if let Some((a, b)) = self.subgroup_orders() {
            text.push_str(&format!("subgroup-p {a:x}\nsubgroup-q {b:x}\n"));
        }
        text
    }

    /// Parse a private key file.
    pub fn from_text(text: &str) -> Result<Self, Error> {
        let l = Zeroizing::new(lines(text, PRIVATE_HEADER)?);
        if l.len() != 4 && l.len() != 6 {
            return Err(Error::Malformed(
                "private key file has extra or missing lines".into(),
            ));
        }
        let mut it = l.iter().map(String::as_str);
        let n = field(it.next(), "n")?;
        let hs = field(it.next(), "hs")?;
        let p = field(it.next(), "p")?;
        let q = field(it.next(), "q")?;
        let public = PublicKey::from_parts(n, hs)?;
        if l.len() == 4 {
            return PrivateKey::from_primes(public, p, q);
        }
        let a = field(it.next(), "subgroup-p")?;
        let b = field(it.next(), "subgroup-q")?;
        PrivateKey::from_subgroup(public, p, q, a, b)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::keygen;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn round_trips_and_refusals() {
        let mut rng = ChaCha20Rng::seed_from_u64(10);
        let sk = keygen(512, &mut rng).unwrap();
        let pk = PublicKey::from_text(&sk.public().to_text()).unwrap();
        assert_eq!(&pk, sk.public());
        let sk2 = PrivateKey::from_text(&sk.to_text()).unwrap();
        assert!(!is_threshold_key(&pk.to_text()));
        let c = pk.encrypt(&BigUint::from(99u32), &mut rng).unwrap();
        assert_eq!(sk2.decrypt(&c).unwrap(), BigUint::from(99u32));
        let text = sk.to_text();
        for bad in [
            text.replace("private", "public"),
            text.replace("\np ", "\nx "),
            text.replacen('a', "g", 1),
            format!("{}extra 1\n", &*text),
            String::new(),
            sk.public().to_text(),
        ] {
            assert!(PrivateKey::from_text(&bad).is_err(), "{bad}");
        }
        // wrong primes
        let other = keygen(512, &mut rng).unwrap();
        let (p, q) = other.primes();
        let forged = format!(
            "{PRIVATE_HEADER}\nn {:x}\nhs {:x}\np {p:x}\nq {q:x}\n",
            sk.public().n(),
            sk.public().hs()
        );
        assert!(PrivateKey::from_text(&forged).is_err());
    }

    #[test]
    fn a_subgroup_key_round_trips_and_its_orders_are_checked() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let sk = crate::keygen_subgroup(1024, &mut rng).unwrap();
        let text = sk.to_text();
        assert!(text.contains("\nsubgroup-p "));
        let back = PrivateKey::from_text(&text).unwrap();
        assert_eq!(back.subgroup_orders(), sk.subgroup_orders());
        let c = sk.public().encrypt(&BigUint::from(7u32), &mut rng).unwrap();
        assert_eq!(back.decrypt(&c).unwrap(), BigUint::from(7u32));
        // Orders that do not divide p - 1, or whose subgroup does not hold hs, are refused.
        let (a, b) = sk.subgroup_orders().unwrap();
        for (bad_a, bad_b) in [(a + 2u32, b.clone()), (a.clone(), BigUint::from(2u32))] {
            let forged = text
                .replace(
                    &format!("subgroup-p {a:x}"),
                    &format!("subgroup-p {bad_a:x}"),
                )
                .replace(
                    &format!("subgroup-q {b:x}"),
                    &format!("subgroup-q {bad_b:x}"),
                );
            assert!(PrivateKey::from_text(&forged).is_err(), "{bad_a} {bad_b}");
        }
        let one_line = text.replace(&format!("subgroup-q {b:x}\n"), "");
        assert!(PrivateKey::from_text(&one_line).is_err());
    }

    #[test]
    fn threshold_files_round_trip_and_refusals() {
        let mut rng = ChaCha20Rng::seed_from_u64(12);
        let p = crate::threshold::random_safe_prime(256, &mut rng);
        let q = crate::threshold::random_safe_prime(256, &mut rng);
        let (key, shares) = crate::threshold::deal_from_primes(&p, &q, 3, 2, &mut rng).unwrap();
        let text = key.to_text();
        assert!(is_threshold_key(&text));
        assert_eq!(ThresholdKey::from_text(&text).unwrap(), key);
        let share = KeyShare::from_text(&shares[2].to_text()).unwrap();
        assert_eq!(share.index(), 3);
        assert_eq!(share.key(), &key);
        let c = [key
            .public()
            .encrypt(&BigUint::from(5u32), &mut rng)
            .unwrap()];
        let parts = [
            share.partial_decrypt(&c, &mut rng),
            shares[0].partial_decrypt(&c, &mut rng),
        ];
        let sum = key.combine(&[&parts[0], &parts[1]]).unwrap();
        assert_eq!(sum, [BigUint::from(5u32)]);
        let stext = shares[1].to_text();
        for bad in [
            stext.replace("index 2", "index 1"),
            stext.replace("index 2", "index 4"),
            stext.replacen("\nvk ", "\nvx ", 1),
            format!("{}vk 3\n", &*stext),
            text.clone(),
            text.replace("threshold 2", "threshold 1"),
            text.replace("threshold 2", "threshold 4"),
        ] {
            assert!(KeyShare::from_text(&bad).is_err(), "{bad}");
        }
        assert!(ThresholdKey::from_text(&text.replace("threshold 2", "threshold 3")).is_ok());
        assert!(ThresholdKey::from_text(&stext).is_err());
        assert!(ThresholdKey::from_text(&key.public().to_text()).is_err());
    }
}
