//! Versioned binary messages.
//!
//! Every message starts with the magic `b"SA"`, the format version (1) and a type byte. Decoding
//! takes the session's parameters: a message longer than the largest valid one of its type is
//! refused before parsing, every count is checked against the bytes that remain and the session's
//! size, ids are checked to belong to the session, and trailing bytes are an error.

use fedagg_quant::Modulus;

use crate::crypto::SHARE_CIPHERTEXT_LEN;
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
/// element reduced): what the server adds into its sum.
pub fn decode_masked_input(cfg: &SessionConfig, msg: &[u8]) -> Result<Vec<u64>, Error> {
    let mut r = Reader::new(msg, Kind::MaskedInput, max_len(Kind::MaskedInput, cfg), cfg)?;
    let y = r.elements()?;
    r.end()?;
    Ok(y)
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
    /// A vector of exactly the session's length of reduced elements.
    pub(crate) fn elements(&mut self) -> Result<Vec<u64>, Error> {
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
        raw.chunks_exact(b)
            .map(|w| {
                let mut le = [0u8; 8];
                le[..b].copy_from_slice(w);
                let x = u64::from_le_bytes(le);
                if modulus.contains(x) {
                    Ok(x)
                } else {
                    Err(malformed(format!(
                        "element {x} is not reduced modulo 2^{}",
                        modulus.bits()
                    )))
                }
            })
            .collect()
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
