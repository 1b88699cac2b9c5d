//! The on-disk key format: small text files, one field per line, integers in lowercase hex.
//!
//! ```text
//! fedagg-paillier-public-key v1        fedagg-paillier-private-key v1
//! n <hex>                              n <hex>
//! hs <hex>                             hs <hex>
//!                                      p <hex>
//!                                      q <hex>
//! ```
//!
//! Parsing checks the header, every field's presence and order, and the key's consistency
//! (`p q = n`, `hs` a unit), and rejects anything else.

use num_bigint::BigUint;
use zeroize::Zeroizing;

use crate::{Error, PrivateKey, PublicKey};

const PUBLIC_HEADER: &str = "fedagg-paillier-public-key v1";
const PRIVATE_HEADER: &str = "fedagg-paillier-private-key v1";
/// Largest key file accepted (an 8192-bit private key is under 6 KiB).
pub const MAX_KEY_FILE: usize = 16 * 1024;

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
        format!("{PUBLIC_HEADER}\nn {:x}\nhs {:x}\n", self.n(), self.hs())
    }

    /// Parse a public key file.
    pub fn from_text(text: &str) -> Result<Self, Error> {
        let l = lines(text, PUBLIC_HEADER)?;
        if l.len() != 2 {
            return Err(Error::Malformed(
                "public key file has extra or missing lines".into(),
            ));
        }
        let mut it = l.iter().map(String::as_str);
        let n = field(it.next(), "n")?;
        let hs = field(it.next(), "hs")?;
        PublicKey::from_parts(n, hs)
    }
}

impl PrivateKey {
    /// The private key file's text (zeroized when dropped).
    pub fn to_text(&self) -> Zeroizing<String> {
        let (p, q) = self.primes();
        let pk = self.public();
        Zeroizing::new(format!(
            "{PRIVATE_HEADER}\nn {:x}\nhs {:x}\np {p:x}\nq {q:x}\n",
            pk.n(),
            pk.hs()
        ))
    }

    /// Parse a private key file.
    pub fn from_text(text: &str) -> Result<Self, Error> {
        let l = Zeroizing::new(lines(text, PRIVATE_HEADER)?);
        if l.len() != 4 {
            return Err(Error::Malformed(
                "private key file has extra or missing lines".into(),
            ));
        }
        let mut it = l.iter().map(String::as_str);
        let n = field(it.next(), "n")?;
        let hs = field(it.next(), "hs")?;
        let p = field(it.next(), "p")?;
        let q = field(it.next(), "q")?;
        PrivateKey::from_primes(PublicKey::from_parts(n, hs)?, p, q)
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
        let c = pk.encrypt(&BigUint::from(99u32), &mut rng).unwrap();
        assert_eq!(sk2.decrypt(&c), BigUint::from(99u32));
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
}
