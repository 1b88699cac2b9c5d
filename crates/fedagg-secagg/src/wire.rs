//! Versioned binary messages.
//!
//! Every message starts with the magic `b"SA"`, the format version (1) and a type byte. Decoding
//! takes the session's parameters: a message longer than the largest valid one of its type is
//! refused before parsing, every count is checked against the bytes that remain and the session's
//! size, ids are checked to belong to the session, and trailing bytes are an error.

use fedagg_quant::Modulus;

use crate::crypto::{load, SHARE_CIPHERTEXT_LEN};
use crate::error::{malformed, Error};
use crate::{ClientId, SessionConfig};

/// Format version written and accepted.
pub const VERSION: u8 = 1;
const MAGIC: [u8; 2] = *b"SA";
const HEADER_LEN: usize = 4;

/// Message type tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Client -> server, round 0.
    AdvertiseKeys = 1,
    /// Server -> client, start of round 1.
    KeyList = 2,
    /// Client -> server, round 1.
    ShareKeys = 3,
    /// Server -> client, start of round 2.
    ForwardedShares = 4,
    /// Client -> server, round 2.
    MaskedInput = 5,
    /// Server -> client, start of round 3.
    ConsistencyRequest = 6,
    /// Client -> server, round 3.
    ConsistencySignature = 7,
    /// Server -> client, start of round 4.
    UnmaskRequest = 8,
    /// Client -> server, round 4.
    UnmaskResponse = 9,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        use Kind::*;
        Some(match b {
            1 => AdvertiseKeys,
            2 => KeyList,
            3 => ShareKeys,
            4 => ForwardedShares,
            5 => MaskedInput,
            6 => ConsistencyRequest,
            7 => ConsistencySignature,
            8 => UnmaskRequest,
            9 => UnmaskResponse,
            _ => return None,
        })
    }
}

/// Read the header of a message: its kind, after checking magic and version.
pub fn peek_kind(bytes: &[u8]) -> Result<Kind, Error> {
    if bytes.len() < HEADER_LEN {
        return Err(malformed("message shorter than its header"));
    }
    if bytes[..2] != MAGIC {
        return Err(malformed("bad magic"));
    }
    if bytes[2] != VERSION {
        return Err(malformed(format!("unsupported version {}", bytes[2])));
    }
    Kind::from_u8(bytes[3]).ok_or_else(|| malformed(format!("unknown message type {}", bytes[3])))
}

/// A masked input message carrying `y` (the client's last step of round 2).
pub fn encode_masked_input(y: &[u64], modulus: Modulus) -> Vec<u8> {
    let mut w = Writer::new(Kind::MaskedInput, 8 + y.len() * modulus.bytes_per_element());
    w.elements(y, modulus);
    w.finish()
}

/// The vector of a masked input message, checked against the session (kind, length, every
/// element reduced).
pub fn decode_masked_input(cfg: &SessionConfig, msg: &[u8]) -> Result<Vec<u64>, Error> {
    Ok(check_masked_input(cfg, msg)?.to_vec())
}

/// A masked input message checked against the session as [`decode_masked_input`] checks it, kept
/// as its elements' wire bytes: what the server adds into its sum, decoding each element as it
/// adds it ([`MaskedInput::add_into`]), one pass instead of a decoded copy and a second pass.
pub fn check_masked_input(cfg: &SessionConfig, msg: &[u8]) -> Result<MaskedInput, Error> {
    let mut r = Reader::new(msg, Kind::MaskedInput, max_len(Kind::MaskedInput, cfg), cfg)?;
    let raw = r.element_bytes()?.to_vec();
    r.end()?;
    Ok(MaskedInput {
        raw,
        modulus: cfg.modulus(),
    })
}

/// A checked masked input ([`check_masked_input`]): `ceil(k / 8)` little-endian bytes per
/// element, each element reduced modulo `2^k`.
pub struct MaskedInput {
    raw: Vec<u8>,
    modulus: Modulus,
}

impl MaskedInput {
    /// Elements in the vector.
    pub fn len(&self) -> usize {
        self.raw.len() / self.modulus.bytes_per_element()
    }

    /// Whether the vector is empty.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// `acc += y (mod 2^k)` element-wise, reading each element straight from its wire bytes.
    /// Panics if the lengths differ (a caller bug: the decoder checked the session's length).
    pub fn add_into(&self, acc: &mut [u64]) {
        assert_eq!(
            acc.len(),
            self.len(),
            "add_into on vectors of different lengths"
        );
        let mask = self.modulus.mask();
        match self.modulus.bytes_per_element() {
            1 => add_width::<1>(acc, &self.raw, mask),
            2 => add_width::<2>(acc, &self.raw, mask),
            3 => add_width::<3>(acc, &self.raw, mask),
            4 => add_width::<4>(acc, &self.raw, mask),
            5 => add_width::<5>(acc, &self.raw, mask),
            6 => add_width::<6>(acc, &self.raw, mask),
            7 => add_width::<7>(acc, &self.raw, mask),
            _ => add_width::<8>(acc, &self.raw, mask),
        }
    }

    /// The decoded vector.
    pub fn to_vec(&self) -> Vec<u64> {
        let b = self.modulus.bytes_per_element();
        self.raw.chunks_exact(b).map(load_le).collect()
    }
}

fn add_width<const B: usize>(acc: &mut [u64], raw: &[u8], mask: u64) {
    for (a, w) in acc.iter_mut().zip(raw.chunks_exact(B)) {
        *a = a.wrapping_add(load::<B>(w)) & mask;
    }
}

/// A little-endian element of up to 8 bytes.
fn load_le(w: &[u8]) -> u64 {
    let mut le = [0u8; 8];
    le[..w.len()].copy_from_slice(w);
    u64::from_le_bytes(le)
}

pub(crate) struct Writer(Vec<u8>);

impl Writer {
    pub(crate) fn new(kind: Kind, capacity: usize) -> Self {
        let mut v = Vec::with_capacity(HEADER_LEN + capacity);
        v.extend_from_slice(&MAGIC);
        v.push(VERSION);
        v.push(kind as u8);
        Writer(v)
    }
    pub(crate) fn u8(&mut self, x: u8) {
        self.0.push(x);
    }
    pub(crate) fn u32(&mut self, x: u32) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, x: u64) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    pub(crate) fn id(&mut self, c: ClientId) {
        self.u32(c.0);
    }
    pub(crate) fn ids(&mut self, ids: &[ClientId]) {
        self.u32(ids.len() as u32);
        for &c in ids {
            self.id(c);
        }
    }
    pub(crate) fn elements(&mut self, v: &[u64], modulus: Modulus) {
        let b = modulus.bytes_per_element();
        self.u64(v.len() as u64);
        self.0.reserve(v.len() * b);
        for x in v {
            self.0.extend_from_slice(&x.to_le_bytes()[..b]);
        }
    }
    pub(crate) fn finish(self) -> Vec<u8> {
        self.0
    }
}

pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    cfg: &'a SessionConfig,
}

impl<'a> Reader<'a> {
    /// Check size limit and header, then read the body.
    pub(crate) fn new(
        bytes: &'a [u8],
        expect: Kind,
        max_len: usize,
        cfg: &'a SessionConfig,
    ) -> Result<Self, Error> {
        if bytes.len() > max_len {
            return Err(malformed(format!(
                "{expect:?} message of {} bytes exceeds the limit of {max_len}",
                bytes.len()
            )));
        }
        let kind = peek_kind(bytes)?;
        if kind != expect {
            return Err(malformed(format!("expected {expect:?}, got {kind:?}")));
        }
        Ok(Reader {
            rest: &bytes[HEADER_LEN..],
            cfg,
        })
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.rest.len() < n {
            return Err(malformed("message truncated"));
        }
        let (a, b) = self.rest.split_at(n);
        self.rest = b;
        Ok(a)
    }
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// A client id that belongs to the session.
    pub(crate) fn id(&mut self) -> Result<ClientId, Error> {
        let c = ClientId(self.u32()?);
        if !self.cfg.graph().contains(c) {
            return Err(malformed(format!("unknown client id {c}")));
        }
        Ok(c)
    }
    /// A count of entries of `entry_len` bytes each: bounded by what remains and by `limit`.
    pub(crate) fn count(&mut self, entry_len: usize, limit: usize) -> Result<usize, Error> {
        let n = self.u32()? as usize;
        if n > limit || n.saturating_mul(entry_len) > self.rest.len() {
            return Err(malformed(format!("list of {n} entries is too long")));
        }
        Ok(n)
    }
    /// A list of ids, strictly increasing (so no duplicates).
    pub(crate) fn sorted_ids(&mut self, limit: usize) -> Result<Vec<ClientId>, Error> {
        let n = self.count(4, limit)?;
        let mut out: Vec<ClientId> = Vec::with_capacity(n);
        for _ in 0..n {
            let c = self.id()?;
            if out.last().is_some_and(|&l| l >= c) {
                return Err(Error::Protocol(format!(
                    "id list is not strictly increasing at {c}: duplicate or unsorted"
                )));
            }
            out.push(c);
        }
        Ok(out)
    }
    /// A vector of exactly the session's length of reduced elements, as its wire bytes.
    pub(crate) fn element_bytes(&mut self) -> Result<&'a [u8], Error> {
        let len = self.u64()?;
        let want = self.cfg.vector_len();
        if len != want as u64 {
            return Err(malformed(format!(
                "vector has length {len}, expected {want}"
            )));
        }
        let modulus = self.cfg.modulus();
        let b = modulus.bytes_per_element();
        let raw = self.take(want * b)?;
        // Only the top byte of an element can hold bits at or above k: check those alone.
        let spare = 8 * b as u32 - modulus.bits();
        if spare > 0 {
            let top = raw
                .chunks_exact(b)
                .position(|w| w[b - 1] >> (8 - spare) != 0);
            if let Some(i) = top {
                return Err(malformed(format!(
                    "element {} is not reduced modulo 2^{}",
                    load_le(&raw[i * b..(i + 1) * b]),
                    modulus.bits()
                )));
            }
        }
        Ok(raw)
    }
    pub(crate) fn end(self) -> Result<(), Error> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(malformed(format!("{} trailing bytes", self.rest.len())))
        }
    }
}

/// Upper bounds on message sizes for a session, used before parsing.
/// The largest message of `kind` a session with `cfg` can produce: decoders refuse longer ones,
/// and the service refuses a longer body before reading it.
pub fn max_len(kind: Kind, cfg: &SessionConfig) -> usize {
    let w = cfg.graph().neighbourhood_size();
    let n = cfg.graph().n() as usize;
    let sig = if cfg.identities().is_some() { 64 } else { 0 };
    HEADER_LEN
        + match kind {
            Kind::AdvertiseKeys => 64 + 64 + 1,
            Kind::KeyList => 4 + w * (4 + 64 + sig),
            Kind::ShareKeys => 32 + 4 + w * (4 + SHARE_CIPHERTEXT_LEN),
            Kind::ForwardedShares => 4 + w * (4 + SHARE_CIPHERTEXT_LEN),
            Kind::MaskedInput => 8 + cfg.vector_len() * cfg.modulus().bytes_per_element(),
            Kind::ConsistencyRequest => 4 + 4 * n,
            Kind::ConsistencySignature => 64,
            Kind::UnmaskRequest => 8 + 4 * w + 8 + 4 * n + 68 * n,
            Kind::UnmaskResponse => 4 + w * (4 + 1 + 32),
        }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::graph::Graph;
    use proptest::prelude::*;

    fn session(bits: u32, len: usize) -> SessionConfig {
        let modulus = Modulus::new(bits).unwrap();
        SessionConfig::new([3; 32], Graph::complete(2).unwrap(), 2, modulus, len, None).unwrap()
    }

    proptest! {
        /// Adding a checked masked input straight from its bytes is adding its decoded vector,
        /// at every width; and an element with a bit at or above k is refused, at its index.
        #[test]
        fn fused_add_equals_decode_then_add(
            bits in 1u32..=64,
            seed in proptest::collection::vec(any::<u64>(), 1..40),
            start in any::<u64>(),
            bad in any::<prop::sample::Index>(),
        ) {
            let cfg = session(bits, seed.len());
            let modulus = cfg.modulus();
            let y: Vec<u64> = seed.iter().map(|x| x & modulus.mask()).collect();
            let msg = encode_masked_input(&y, modulus);
            let checked = check_masked_input(&cfg, &msg).unwrap();
            prop_assert_eq!(checked.len(), y.len());
            prop_assert_eq!(checked.to_vec(), y.clone());
            let mut fused: Vec<u64> = y.iter().map(|x| (x ^ start) & modulus.mask()).collect();
            let mut two_pass = fused.clone();
            checked.add_into(&mut fused);
            modulus.add_assign(&mut two_pass, &decode_masked_input(&cfg, &msg).unwrap());
            prop_assert_eq!(fused, two_pass);
            let b = modulus.bytes_per_element();
            if bits % 8 != 0 {
                let i = bad.index(y.len());
                let mut tampered = msg.clone();
                // Header, then the u64 length, then the elements.
                tampered[HEADER_LEN + 8 + i * b + b - 1] |= 0x80;
                let err = check_masked_input(&cfg, &tampered).err().unwrap().to_string();
                let want = y[i] | (0x80u64 << (8 * (b - 1)));
                prop_assert!(err.contains(&format!("element {want} is not reduced")), "{}", err);
            }
        }
    }
}
