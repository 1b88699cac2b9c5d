//! SCAFFOLD on the participant's side (Karimireddy et al. 2020).
//!
//! A SCAFFOLD federation ([`fedagg_api::FederationSpec::scaffold`]) keeps a server control
//! variate `c`, published with each model ([`crate::Client::server_controls`]). Each participant
//! keeps its own `c_i`, which never leaves it: [`LocalControls`] stores it in a file the caller
//! chooses. A round then goes:
//!
//! 1. read the model `w` and `c` of the same version, and `c_i` ([`LocalControls::load`]; zero
//!    for a participant that has none yet, or lost it, as in the paper);
//! 2. train locally with the correction `c - c_i`, giving the update `delta` and `c_i+`;
//! 3. contribute `delta` with the control delta `c_i+ - c_i`
//!    ([`crate::Contribute::control_delta`]): both go through the federation's protection;
//! 4. once the round completed with this contribution, [`LocalControls::save`] `c_i+`. A round
//!    that failed left the server's `c` as it was, so `c_i` stays as it was too.
//!
//! The file holds a header (magic, federation id, length) and the values, little-endian; it is
//! written durably (temporary file, synced, renamed) with mode 0600: `c_i` is a function of the
//! participant's local gradients.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

const MAGIC: &[u8; 16] = b"fedagg c_i v1\0\0\0";
const HEADER: usize = MAGIC.len() + 8 + 8;

/// A participant's control variate `c_i`, kept in a file.
pub struct LocalControls {
    path: PathBuf,
    federation_id: i64,
    len: usize,
}

impl LocalControls {
    /// The control variate of federation `federation_id` (models of `len` values) kept at `path`.
    pub fn new(path: impl Into<PathBuf>, federation_id: i64, len: usize) -> Self {
        LocalControls {
            path: path.into(),
            federation_id,
            len,
        }
    }

    /// `c_i`: zero when the file does not exist (a participant that has not taken part yet). A
    /// file of another federation or length, or a damaged one, is an error, never read as zero.
    pub fn load(&self) -> Result<Vec<f32>> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![0.0; self.len]),
            Err(e) => return Err(self.bad(e.to_string())),
        };
        let (header, values) = bytes
            .split_at_checked(HEADER)
            .ok_or_else(|| self.bad("shorter than its header".into()))?;
        if &header[..MAGIC.len()] != MAGIC {
            return Err(self.bad("not a fedagg control-variate file".into()));
        }
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&header[MAGIC.len() + 8 * i..MAGIC.len() + 8 * (i + 1)]);
            b
        };
        let (fid, len) = (i64::from_le_bytes(word(0)), u64::from_le_bytes(word(1)));
        if fid != self.federation_id || len != self.len as u64 {
            return Err(self.bad(format!(
                "holds {len} values of federation {fid}, not {} of federation {}",
                self.len, self.federation_id
            )));
        }
        let values =
            fedagg_api::f32_values(values, self.len).map_err(|e| self.bad(e.to_string()))?;
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(self.bad(format!("value {i} is not finite")));
        }
        Ok(values)
    }

    /// Store `c_i` durably (the old file or the new one survives a crash, never a torn one).
    pub fn save(&self, controls: &[f32]) -> Result<()> {
        if controls.len() != self.len {
            return Err(self.bad(format!(
                "{} values to save, the federation's model has {}",
                controls.len(),
                self.len
            )));
        }
        let mut bytes = Vec::with_capacity(HEADER + 4 * controls.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&self.federation_id.to_le_bytes());
        bytes.extend_from_slice(&(self.len as u64).to_le_bytes());
        bytes.extend_from_slice(&fedagg_api::f32_bytes(controls));
        crate::identity::replace_durably(&self.path, &bytes).map_err(|e| self.bad(e.to_string()))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn bad(&self, e: String) -> Error {
        Error::Protocol(format!("{}: {e}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn controls_start_at_zero_read_back_and_refuse_another_federation() {
        let dir = std::env::temp_dir().join(format!("fedagg-controls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c_i");
        let c = LocalControls::new(&path, 3, 4);
        assert_eq!(c.load().unwrap(), vec![0.0; 4]);
        c.save(&[1.0, -2.5, 0.0, 3.25]).unwrap();
        assert_eq!(c.load().unwrap(), vec![1.0, -2.5, 0.0, 3.25]);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        c.save(&[0.5; 4]).unwrap();
        assert_eq!(c.load().unwrap(), vec![0.5; 4]);
        assert!(c.save(&[0.5; 3]).is_err());
        assert!(LocalControls::new(&path, 4, 4).load().is_err());
        assert!(LocalControls::new(&path, 3, 5).load().is_err());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.pop();
        std::fs::write(&path, &bytes).unwrap();
        assert!(c.load().is_err());
        std::fs::write(&path, b"short").unwrap();
        assert!(c.load().is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
