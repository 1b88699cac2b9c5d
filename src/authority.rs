//! The enrollment authority's tools (`fedagg authority`): its Ed25519 key, and the roster of
//! participants' identity keys it signs. The authority is whoever must vouch that each identity
//! on the roster belongs to a real partner; its secret key never goes near the server
//! (docs/threat-model.md says who should hold it).

use std::path::Path;

use anyhow::{bail, Context, Result};
use fedagg_client::{Admin, Identity};

/// Create the authority's key in `dir/authority.key` (mode 0600, never replaced); returns the
/// public key (64 hex digits) that federations name as `roster_authority`.
pub fn keygen(dir: &Path) -> Result<String> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("authority.key");
    if path.exists() {
        bail!(
            "{} already exists: an authority key is never replaced",
            path.display()
        );
    }
    let key = Identity::generate();
    key.save(&path)?;
    Ok(key.public_hex())
}

/// Sign federation `fid`'s roster with the key in `key`: every participant enrolled with an
/// identity key, or only those in `only` (each with the key its partner read out); stores it on
/// the server and returns what was signed, to print.
pub async fn sign_roster(
    admin: &Admin,
    fid: i64,
    key: &Path,
    only: Option<&[(i64, String)]>,
) -> Result<Vec<fedagg_api::RosterEntry>> {
    let key = Identity::load(key)?;
    let fed = admin.federation(fid).await?;
    if fed.spec.roster_authority.as_deref() != Some(key.public_hex().as_str()) {
        bail!(
            "federation {fid} names roster authority {:?}, not this key ({})",
            fed.spec.roster_authority,
            key.public_hex()
        );
    }
    let enrolled = admin.roster(fid).await?.enrolled;
    let members = match only {
        None => enrolled,
        Some(expected) => {
            let mut picked = Vec::new();
            for (pid, identity) in expected {
                let Some(m) = enrolled.iter().find(|m| m.participant_id == *pid) else {
                    bail!("participant {pid} is not enrolled with an identity key");
                };
                if m.identity_key != *identity {
                    bail!(
                        "participant {pid} enrolled with identity {}, not {identity}: not signed",
                        m.identity_key
                    );
                }
                picked.push(m.clone());
            }
            picked
        }
    };
    let signed = key.sign_roster(fid, members)?;
    admin.put_roster(fid, &signed).await?;
    Ok(signed.members)
}
