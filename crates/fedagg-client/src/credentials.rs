//! A member's credentials in one file: what [`Client::enroll`] obtained and what
//! [`Client::connect`] needs again (the server's URL, the federation and participant ids, the
//! token, the pin and the identity key), so that a program enrolls once and reconnects after a
//! restart. The file is created with mode 0600 and never replaced: it holds the token and the
//! identity's secret key.

use std::path::Path;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::{write_secret, Client, Error, Identity, Result, Transport};

/// The file's contents. No `Debug`, no `Clone`: it holds the token and the identity key, both
/// wiped when it drops.
#[derive(Serialize, Deserialize)]
struct Stored {
    url: String,
    federation_id: i64,
    participant_id: i64,
    token: String,
    pin: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    identity: Option<String>,
}

impl Drop for Stored {
    fn drop(&mut self) {
        self.token.zeroize();
        self.identity.zeroize();
    }
}

/// Write an enrollment file for one member: the server's URL and the enrollment bundle, with a
/// comment saying what it is (`what`), created with mode 0600 (an existing file is never
/// replaced). `fedagg admin codes create` writes one per member; [`read_enrollment`] and
/// `fedagg key-holder --enrollment` read it.
pub fn write_enrollment(path: &Path, url: &str, bundle: &str, what: &str) -> Result<()> {
    let text = Zeroizing::new(format!(
        "# fedagg enrollment: {what}\n# Single use; hand it to that member only.\nurl = {url}\ncode = {bundle}\n"
    ));
    write_secret(path, text.as_bytes())
        .map_err(|e| Error::Protocol(format!("writing {}: {e}", path.display())))
}

/// The server's URL and the enrollment bundle from a file [`write_enrollment`] wrote.
pub fn read_enrollment(path: &Path) -> Result<(String, Zeroizing<String>)> {
    let bad = |e: &dyn std::fmt::Display| Error::Protocol(format!("{}: {e}", path.display()));
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| bad(&e))?);
    let (mut url, mut code) = (None, None);
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
            Some(("url", v)) => url = Some(v.to_string()),
            Some(("code", v)) => code = Some(Zeroizing::new(v.to_string())),
            _ => {
                return Err(bad(
                    &"not an enrollment file (lines `url = ...` and `code = ...`)",
                ))
            }
        }
    }
    match (url, code) {
        (Some(u), Some(c)) => Ok((u, c)),
        _ => Err(bad(&"an enrollment file needs both `url` and `code`")),
    }
}

impl Client {
    /// Write this client's credentials to a new file of mode 0600 (an existing file is never
    /// replaced); [`Client::load_credentials`] reads them back.
    pub fn save_credentials(&self, path: &Path) -> Result<()> {
        let token = self
            .http
            .token
            .as_deref()
            .ok_or_else(|| Error::Protocol("this client has no token to save".into()))?;
        let stored = Stored {
            url: self.http.base.clone(),
            federation_id: self.federation_id,
            participant_id: self.participant_id,
            token: token.to_string(),
            pin: self.pin.to_string(),
            identity: self.identity().map(|i| i.secret_hex().to_string()),
        };
        let text = Zeroizing::new(
            serde_json::to_vec_pretty(&stored).map_err(|e| Error::Protocol(e.to_string()))?,
        );
        write_secret(path, &text)
            .map_err(|e| Error::Protocol(format!("writing {}: {e}", path.display())))
    }

    /// A client from credentials written by [`Client::save_credentials`], with its identity.
    pub fn load_credentials(path: &Path, transport: &Transport) -> Result<Client> {
        let bad = |e: &dyn std::fmt::Display| Error::Protocol(format!("{}: {e}", path.display()));
        let text = Zeroizing::new(std::fs::read(path).map_err(|e| bad(&e))?);
        let stored: Stored = serde_json::from_slice(&text).map_err(|e| bad(&e))?;
        let pin = stored.pin.parse().map_err(|e| bad(&e))?;
        let client = Client::connect_with(
            &stored.url,
            &stored.token,
            stored.federation_id,
            stored.participant_id,
            pin,
            transport,
        )?;
        Ok(match &stored.identity {
            Some(hex_key) => {
                client.with_identity(Identity::from_hex(hex_key).map_err(|e| bad(&e))?)
            }
            None => client,
        })
    }

    /// The federation's id.
    pub fn federation_id(&self) -> i64 {
        self.federation_id
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn credentials_read_back_whole_from_a_private_file_never_replaced() {
        let dir = std::env::temp_dir().join(format!("fedagg-cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("member.json");
        let _ = std::fs::remove_file(&path);
        let pin: fedagg_api::trust::Pin = format!("{}.{}", "ab".repeat(32), "cd".repeat(32))
            .parse()
            .unwrap();
        let id = Identity::generate();
        let public = id.public_hex();
        let client = Client::connect("http://127.0.0.1:8470", "tok-123", 4, 17, pin)
            .unwrap()
            .with_identity(id);
        client.save_credentials(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let back = Client::load_credentials(&path, &Transport::default()).unwrap();
        assert_eq!(
            (back.federation_id(), back.participant_id(), back.pin()),
            (4, 17, pin)
        );
        assert_eq!(back.http.token.as_deref(), Some("tok-123"));
        assert_eq!(back.http.base, "http://127.0.0.1:8470");
        assert_eq!(back.identity().unwrap().public_hex(), public);
        // Never replaced; a damaged file is an error naming it.
        assert!(back.save_credentials(&path).is_err());
        std::fs::write(dir.join("bad.json"), "{").unwrap();
        let e = Client::load_credentials(&dir.join("bad.json"), &Transport::default()).err();
        assert!(e.unwrap().to_string().contains("bad.json"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_enrollment_file_reads_back_and_refuses_other_text() {
        let dir = std::env::temp_dir().join(format!("fedagg-enr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("site-1.enroll");
        let _ = std::fs::remove_file(&path);
        write_enrollment(&path, "https://h:1", "fe_x.ab", "participant site-1").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (url, code) = read_enrollment(&path).unwrap();
        assert_eq!((url.as_str(), code.as_str()), ("https://h:1", "fe_x.ab"));
        assert!(write_enrollment(&path, "https://h:1", "fe_y", "again").is_err());
        std::fs::write(dir.join("bad"), "url = https://h:1\n").unwrap();
        assert!(read_enrollment(&dir.join("bad")).is_err());
        std::fs::write(dir.join("bad2"), "hello\n").unwrap();
        assert!(read_enrollment(&dir.join("bad2")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
