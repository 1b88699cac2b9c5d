//! Vector bodies: a 24-byte header and raw little-endian values or a protocol message.

use std::fmt;

/// What a vector frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// Little-endian f32 values: a global model or a DP-mode update.
    F32 = 1,
    /// Little-endian u64 values: a decrypted aggregate.
    U64 = 2,
    /// A `fedagg-secagg` wire message.
    Secagg = 3,
    /// A `fedagg-paillier` ciphertext vector.
    Paillier = 4,
    /// A `fedagg-lattice` ciphertext vector.
    Lattice = 5,
    /// A threshold Paillier key holder's partial decryption of the sum, with its proof.
    PartialDecryption = 6,
    /// Signed contributions for the key holders ([`crate::contributions`]).
    Contributions = 7,
}

impl FrameKind {
    fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => FrameKind::F32,
            2 => FrameKind::U64,
            3 => FrameKind::Secagg,
            4 => FrameKind::Paillier,
            5 => FrameKind::Lattice,
            6 => FrameKind::PartialDecryption,
            7 => FrameKind::Contributions,
            _ => return None,
        })
    }
}

/// Frame header length.
pub const FRAME_HEADER: usize = 24;
const MAGIC: &[u8; 3] = b"FAV";
const VERSION: u8 = 1;

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// Shorter than the header, wrong magic or version, or unknown kind.
    BadHeader(String),
    /// Another kind than expected.
    WrongKind {
        /// Expected.
        expected: FrameKind,
        /// Found.
        found: FrameKind,
    },
    /// A round (or model version) other than expected.
    WrongRound {
        /// Expected.
        expected: u64,
        /// Found.
        found: u64,
    },
    /// Declared and actual payload length differ, or the payload is not whole values.
    BadLength(String),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::BadHeader(s) => write!(f, "bad frame header: {s}"),
            FrameError::WrongKind { expected, found } => {
                write!(f, "frame kind {found:?} where {expected:?} was expected")
            }
            FrameError::WrongRound { expected, found } => {
                write!(f, "frame is for round {found}, expected {expected}")
            }
            FrameError::BadLength(s) => write!(f, "bad frame length: {s}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// A vector body: header plus payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Payload kind.
    pub kind: FrameKind,
    /// Round number (or model version for model downloads).
    pub round: u64,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

impl Frame {
    /// Encode: `"FAV" | version | kind | 3 zero bytes | round u64 LE | payload length u64 LE |
    /// payload`.
    pub fn encode(kind: FrameKind, round: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(FRAME_HEADER + payload.len());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(kind as u8);
        out.extend_from_slice(&[0; 3]);
        out.extend_from_slice(&round.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// Decode and check kind and round; returns the payload.
    pub fn decode(bytes: &[u8], kind: FrameKind, round: u64) -> Result<&[u8], FrameError> {
        let (found, payload) = Self::decode_any(bytes, round)?;
        if found != kind {
            return Err(FrameError::WrongKind {
                expected: kind,
                found,
            });
        }
        Ok(payload)
    }

    /// Decode and check the round, whatever the kind; returns the kind and the payload.
    pub fn decode_any(bytes: &[u8], round: u64) -> Result<(FrameKind, &[u8]), FrameError> {
        let (header, payload) = bytes
            .split_at_checked(FRAME_HEADER)
            .ok_or_else(|| FrameError::BadHeader(format!("{} bytes", bytes.len())))?;
        if &header[..3] != MAGIC {
            return Err(FrameError::BadHeader("not a fedagg frame".into()));
        }
        if header[3] != VERSION {
            return Err(FrameError::BadHeader(format!(
                "version {} (this server speaks {VERSION})",
                header[3]
            )));
        }
        let found = FrameKind::from_u8(header[4])
            .ok_or_else(|| FrameError::BadHeader(format!("unknown kind {}", header[4])))?;
        if header[5..8] != [0; 3] {
            return Err(FrameError::BadHeader("reserved bytes are not zero".into()));
        }
        let r = u64::from_le_bytes(le8(&header[8..16]));
        if r != round {
            return Err(FrameError::WrongRound {
                expected: round,
                found: r,
            });
        }
        let len = u64::from_le_bytes(le8(&header[16..24]));
        if len != payload.len() as u64 {
            return Err(FrameError::BadLength(format!(
                "header says {len} payload bytes, body has {}",
                payload.len()
            )));
        }
        Ok((found, payload))
    }
}

fn le8(b: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    a
}

/// Little-endian bytes of f32 values.
pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// f32 values from little-endian bytes; exactly `expected_len` values, all finite.
pub fn f32_values(bytes: &[u8], expected_len: usize) -> Result<Vec<f32>, FrameError> {
    if bytes.len() != expected_len.saturating_mul(4) {
        return Err(FrameError::BadLength(format!(
            "{} bytes, expected {expected_len} f32 values ({} bytes)",
            bytes.len(),
            expected_len.saturating_mul(4)
        )));
    }
    bytes
        .chunks_exact(4)
        .enumerate()
        .map(|(i, c)| {
            let x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            if x.is_finite() {
                Ok(x)
            } else {
                Err(FrameError::BadLength(format!("value {i} is not finite")))
            }
        })
        .collect()
}

/// Little-endian bytes of u64 values.
pub fn u64_bytes(v: &[u64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// u64 values from little-endian bytes; exactly `expected_len` values.
pub fn u64_values(bytes: &[u8], expected_len: usize) -> Result<Vec<u64>, FrameError> {
    if bytes.len() != expected_len.saturating_mul(8) {
        return Err(FrameError::BadLength(format!(
            "{} bytes, expected {expected_len} u64 values",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(le8(c)))
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn frame_round_trip_and_refusals() {
        let payload = f32_bytes(&[1.0, -2.5, 3.25]);
        let f = Frame::encode(FrameKind::F32, 7, &payload);
        assert_eq!(Frame::decode(&f, FrameKind::F32, 7).unwrap(), &payload[..]);
        assert_eq!(f32_values(&payload, 3).unwrap(), vec![1.0, -2.5, 3.25]);
        assert!(matches!(
            Frame::decode(&f, FrameKind::U64, 7),
            Err(FrameError::WrongKind { .. })
        ));
        assert!(matches!(
            Frame::decode(&f, FrameKind::F32, 8),
            Err(FrameError::WrongRound { .. })
        ));
        let mut longer = f.clone();
        longer.push(0);
        assert!(matches!(
            Frame::decode(&longer, FrameKind::F32, 7),
            Err(FrameError::BadLength(_))
        ));
        assert!(Frame::decode(&f[..10], FrameKind::F32, 7).is_err());
        let mut bad = f.clone();
        bad[0] = b'X';
        assert!(Frame::decode(&bad, FrameKind::F32, 7).is_err());
        assert!(f32_values(&payload, 4).is_err());
        assert!(f32_values(&f32_bytes(&[f32::NAN]), 1).is_err());
        assert_eq!(
            u64_values(&u64_bytes(&[1, u64::MAX]), 2).unwrap(),
            vec![1, u64::MAX]
        );
    }

    #[test]
    fn every_prefix_of_a_frame_is_refused() {
        let f = Frame::encode(FrameKind::Secagg, 1, &[9; 40]);
        for cut in 0..f.len() {
            assert!(
                Frame::decode(&f[..cut], FrameKind::Secagg, 1).is_err(),
                "{cut}"
            );
        }
    }
}
