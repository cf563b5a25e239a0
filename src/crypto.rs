//! Server secrets, and what the store sees of a ticket.
//!
//! From a ticket's 32 bytes and the server secret named by its key id, two
//! values are derived with HMAC-SHA256 under distinct labels:
//!
//! * the **storage id**, which names the store key `<prefix>t:<id>`;
//! * the **sealing key**, a ChaCha20-Poly1305 key for the ticket's two
//!   records: the **fresh** record (what the first redeem gets) and the
//!   **used** record (what is left once the ticket is redeemed). The
//!   associated data is the record's kind and the store key.
//!
//! So the store never holds a ticket, or a ticket's user id or origin, in
//! clear (the event log for WebSocket servers names users: see
//! `core::events`); a value
//! moved under another key does not open; a used record never opens as a
//! fresh one; and whoever can write to the store but lacks the server secret
//! cannot make a value that opens.

use crate::domain::{KeyId, Ticket};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use rand::{RngCore, TryRngCore};
use sha2::Sha256;
use std::fmt;
use zeroize::Zeroizing;

/// Version byte in front of every sealed value.
const SEALED_V1: u8 = 1;
const NONCE_LEN: usize = 12;

/// Which of a ticket's two records a sealed value is: part of its
/// associated data, so that one never opens as the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Record {
    Fresh,
    Used,
}

impl Record {
    /// `<kind>\0<store key>`.
    fn associated_data(self, store_key: &str) -> Vec<u8> {
        let kind: &[u8] = match self {
            Record::Fresh => b"fresh",
            Record::Used => b"used",
        };
        [kind, b"\0", store_key.as_bytes()].concat()
    }
}

/// One `{id, secret}` entry of `tickets.secrets`.
#[derive(Clone)]
pub struct ServerSecret {
    id: KeyId,
    key: Zeroizing<[u8; 32]>,
    /// HMAC-SHA256 keyed with `key`, ready to clone: keying hashes two
    /// blocks, which every ticket would otherwise pay twice. As secret as
    /// `key` and as long-lived (the process's).
    mac: HmacSha256,
}

impl fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerSecret {{ id: {:?}, key: *** }}", self.id.as_ref())
    }
}

impl ServerSecret {
    /// `secret` is base64url (padding optional) of exactly 32 bytes.
    pub fn parse(id: &str, secret: &str) -> Result<Self, String> {
        let id = KeyId::parse(id).map_err(str::to_owned)?;
        let trimmed = secret.trim().trim_end_matches('=');
        let bytes = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(trimmed)
                .map_err(|_| "the secret is not base64url".to_owned())?,
        );
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| format!("the secret must be 32 bytes, found {}", bytes.len()))?;
        Ok(ServerSecret::new(id, Zeroizing::new(key)))
    }

    /// A new random secret (for `keygen` and the in-memory default).
    pub(crate) fn generate(id: &str) -> Result<Self, String> {
        let id = KeyId::parse(id).map_err(str::to_owned)?;
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng
            .try_fill_bytes(key.as_mut())
            .map_err(|e| format!("the OS random generator failed: {e}"))?;
        Ok(ServerSecret::new(id, key))
    }

    fn new(id: KeyId, key: Zeroizing<[u8; 32]>) -> Self {
        // HMAC accepts keys of any length; a 32-byte key cannot fail.
        let mac = <HmacSha256 as Mac>::new_from_slice(key.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        ServerSecret { id, key, mac }
    }

    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// base64url of the key, for `keygen` output only.
    pub fn expose_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.key.as_ref())
    }
}

/// All configured server secrets; the first one mints.
#[derive(Debug, Clone)]
pub(crate) struct Keyring {
    secrets: Vec<ServerSecret>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum CryptoError {
    #[error("the OS random generator failed")]
    Random,
    #[error("sealing failed")]
    Seal,
}

impl Keyring {
    pub(crate) fn new(secrets: Vec<ServerSecret>) -> Result<Self, String> {
        if secrets.is_empty() {
            return Err("at least one ticket secret is required".into());
        }
        for (i, s) in secrets.iter().enumerate() {
            if secrets[..i].iter().any(|o| o.id == s.id) {
                return Err(format!("duplicate secret id {:?}", s.id.as_ref()));
            }
        }
        Ok(Keyring { secrets })
    }

    pub(crate) fn minting_kid(&self) -> &KeyId {
        &self.secrets[0].id
    }

    /// A fresh ticket under the minting secret, with its derived keys.
    pub(crate) fn mint(&self) -> Result<(Ticket, TicketKeys), CryptoError> {
        let secret = &self.secrets[0];
        let ticket = Ticket::generate(secret.id.clone()).map_err(|_| CryptoError::Random)?;
        let keys = TicketKeys::derive(secret, &ticket);
        Ok((ticket, keys))
    }

    /// A stable, non-reversible name for `value` (a user id, an address) in
    /// store keys: HMAC-SHA256 under the minting secret, labelled by `kind`,
    /// 16 bytes in base64url. Nothing in the store names a user or an
    /// address in clear; the names change when the minting secret does.
    pub(crate) fn fingerprint(&self, kind: &str, value: &str) -> String {
        fingerprint(&self.secrets[0], kind, value)
    }

    /// [`fingerprint`](Self::fingerprint) under every secret, the minting
    /// one first: what must reach every ticket, whichever secret minted it
    /// (a user's revocation), is written under each.
    pub(crate) fn fingerprints(&self, kind: &str, value: &str) -> Vec<String> {
        self.secrets
            .iter()
            .map(|s| fingerprint(s, kind, value))
            .collect()
    }

    /// The fingerprint under the secret that minted `ticket`, which is one
    /// of [`fingerprints`](Self::fingerprints) on every replica that can
    /// open the ticket, through a key rotation too.
    pub(crate) fn fingerprint_for(
        &self,
        ticket: &Ticket,
        kind: &str,
        value: &str,
    ) -> Option<String> {
        self.secrets
            .iter()
            .find(|s| &s.id == ticket.kid())
            .map(|s| fingerprint(s, kind, value))
    }

    /// The derived keys, or `None` when the ticket's key id is unknown (then
    /// the ticket cannot exist and the store need not be asked).
    pub(crate) fn keys_for(&self, ticket: &Ticket) -> Option<TicketKeys> {
        self.secrets
            .iter()
            .find(|s| &s.id == ticket.kid())
            .map(|s| TicketKeys::derive(s, ticket))
    }
}

type HmacSha256 = Hmac<Sha256>;

/// A keyed fingerprint of `value` (a user id, an address) for store keys:
/// stable under one secret, meaningless without it.
fn fingerprint(secret: &ServerSecret, kind: &str, value: &str) -> String {
    let mut mac = secret.mac.clone();
    mac.update(b"wsticket/v1/fingerprint\0");
    mac.update(kind.as_bytes());
    mac.update(b"\0");
    mac.update(value.as_bytes());
    let digest: [u8; 32] = mac.finalize().into_bytes().into();
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

pub(crate) struct TicketKeys {
    storage_id: [u8; 32],
    sealing_key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for TicketKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TicketKeys(***)")
    }
}

fn derive(secret: &ServerSecret, label: &[u8], ticket: &Ticket) -> [u8; 32] {
    let mut mac = secret.mac.clone();
    mac.update(b"wsticket/v1/");
    mac.update(label);
    mac.update(b"\0");
    mac.update(secret.id.as_ref().as_bytes());
    mac.update(b"\0");
    mac.update(ticket.secret_bytes());
    mac.finalize().into_bytes().into()
}

impl TicketKeys {
    fn derive(secret: &ServerSecret, ticket: &Ticket) -> Self {
        TicketKeys {
            storage_id: derive(secret, b"storage-id", ticket),
            sealing_key: Zeroizing::new(derive(secret, b"sealing-key", ticket)),
        }
    }

    /// `<prefix>t:<base64url storage id>`.
    pub(crate) fn store_key(&self, prefix: &str) -> String {
        format!("{prefix}t:{}", URL_SAFE_NO_PAD.encode(self.storage_id))
    }

    /// A short, stable, non-secret name for the ticket in logs: the first 12
    /// characters (72 bits) of the base64url storage id, an HMAC of the
    /// ticket that reveals nothing about it. The same ticket gives the same
    /// reference when minted, redeemed and presented again.
    pub(crate) fn reference(&self) -> String {
        let mut r = URL_SAFE_NO_PAD.encode(&self.storage_id[..9]);
        r.truncate(12);
        r
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(self.sealing_key.as_ref()))
    }

    /// `0x01 || nonce || ciphertext+tag`. Each sealing key seals the two
    /// records of one ticket, each under a fresh random nonce.
    pub(crate) fn seal(
        &self,
        record: Record,
        store_key: &str,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &record.associated_data(store_key),
                },
            )
            .map_err(|_| CryptoError::Seal)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(SEALED_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// `None` for anything that was not sealed by `seal` under this key, for
    /// this record and this store key.
    pub(crate) fn open(
        &self,
        record: Record,
        store_key: &str,
        sealed: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        let (&version, rest) = sealed.split_first()?;
        if version != SEALED_V1 || rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        self.cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: &record.associated_data(store_key),
                },
            )
            .ok()
            .map(Zeroizing::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(ids: &[&str]) -> Keyring {
        Keyring::new(
            ids.iter()
                .map(|id| ServerSecret::generate(id).unwrap())
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn derivation_is_hmac_sha256_of_the_documented_message() {
        // Stored keys must not change between versions (a rolling upgrade
        // redeems tickets the old version minted): recompute from scratch.
        let secret = ServerSecret::parse("k1", &"A".repeat(43)).unwrap();
        let ring = Keyring::new(vec![secret.clone()]).unwrap();
        let (ticket, keys) = ring.mint().unwrap();
        let expect = |label: &str| -> [u8; 32] {
            let mut mac = <HmacSha256 as Mac>::new_from_slice(&[0u8; 32]).unwrap();
            mac.update(format!("wsticket/v1/{label}\0k1\0").as_bytes());
            mac.update(ticket.secret_bytes());
            mac.finalize().into_bytes().into()
        };
        assert_eq!(keys.storage_id, expect("storage-id"));
        assert_eq!(*keys.sealing_key, expect("sealing-key"));
        let again = ring.keys_for(&ticket).unwrap();
        assert_eq!(again.storage_id, keys.storage_id);
    }

    #[test]
    fn seal_then_open_round_trips() {
        let ring = ring(&["k1"]);
        let (_t, keys) = ring.mint().unwrap();
        let key = keys.store_key("p:");
        let sealed = keys.seal(Record::Fresh, &key, b"payload").unwrap();
        assert_eq!(
            keys.open(Record::Fresh, &key, &sealed).unwrap().as_slice(),
            b"payload"
        );
    }

    #[test]
    fn flipping_any_byte_of_the_stored_value_makes_it_unopenable() {
        let ring = ring(&["k1"]);
        let (_t, keys) = ring.mint().unwrap();
        let key = keys.store_key("p:");
        let sealed = keys.seal(Record::Fresh, &key, br#"{"u":"alice"}"#).unwrap();
        for i in 0..sealed.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = sealed.clone();
                bad[i] ^= bit;
                assert!(
                    keys.open(Record::Fresh, &key, &bad).is_none(),
                    "byte {i} bit {bit:#x}"
                );
            }
        }
        assert!(
            keys.open(Record::Fresh, &key, &sealed[..sealed.len() - 1])
                .is_none()
        );
        assert!(keys.open(Record::Fresh, &key, &[]).is_none());
    }

    #[test]
    fn a_used_record_never_opens_as_a_fresh_one() {
        let ring = ring(&["k1"]);
        let (_t, keys) = ring.mint().unwrap();
        let key = keys.store_key("p:");
        let used = keys.seal(Record::Used, &key, b"payload").unwrap();
        assert!(keys.open(Record::Fresh, &key, &used).is_none());
        assert_eq!(
            keys.open(Record::Used, &key, &used).unwrap().as_slice(),
            b"payload"
        );
        let fresh = keys.seal(Record::Fresh, &key, b"payload").unwrap();
        assert!(keys.open(Record::Used, &key, &fresh).is_none());
    }

    #[test]
    fn a_value_copied_under_another_key_does_not_open() {
        let ring = ring(&["k1"]);
        let (_a, keys_a) = ring.mint().unwrap();
        let (_b, keys_b) = ring.mint().unwrap();
        let key_a = keys_a.store_key("p:");
        let key_b = keys_b.store_key("p:");
        let sealed = keys_a.seal(Record::Fresh, &key_a, b"payload").unwrap();
        // Under ticket b's key, neither b's sealing key nor a's opens it.
        assert!(keys_b.open(Record::Fresh, &key_b, &sealed).is_none());
        assert!(keys_a.open(Record::Fresh, &key_b, &sealed).is_none());
        // Same ticket, other prefix: the associated data differs.
        assert!(
            keys_a
                .open(Record::Fresh, &keys_a.store_key("q:"), &sealed)
                .is_none()
        );
    }

    #[test]
    fn derivation_depends_on_the_server_secret_and_is_stable() {
        let ring_a = ring(&["k1"]);
        let ring_b = ring(&["k1"]);
        let (t, keys) = ring_a.mint().unwrap();
        let again = ring_a.keys_for(&t).unwrap();
        assert_eq!(keys.store_key(""), again.store_key(""));
        let other = ring_b.keys_for(&t).unwrap();
        assert_ne!(keys.store_key(""), other.store_key(""));
        let sealed = keys.seal(Record::Fresh, "k", b"x").unwrap();
        assert!(other.open(Record::Fresh, "k", &sealed).is_none());
    }

    #[test]
    fn storage_id_reveals_nothing_of_the_ticket() {
        let ring = ring(&["k1"]);
        let (t, keys) = ring.mint().unwrap();
        let wire = t.expose();
        let key = keys.store_key("");
        assert!(!key.contains(&wire[7..]));
    }

    #[test]
    fn unknown_kid_has_no_keys_and_rotation_keeps_old_ones() {
        let old = ring(&["old"]);
        let (t_old, _) = old.mint().unwrap();
        let rotated = Keyring::new(vec![
            ServerSecret::generate("new").unwrap(),
            old.secrets[0].clone(),
        ])
        .unwrap();
        assert!(rotated.keys_for(&t_old).is_some());
        assert_eq!(rotated.minting_kid().as_ref(), "new");
        let (t_new, _) = rotated.mint().unwrap();
        assert!(old.keys_for(&t_new).is_none());
    }

    #[test]
    fn secrets_must_be_32_bytes_of_base64url_with_unique_ids() {
        let s = ServerSecret::generate("k1").unwrap();
        let b64 = s.expose_base64();
        assert!(ServerSecret::parse("k1", &b64).is_ok());
        assert!(ServerSecret::parse("k1", &format!("{b64}=")).is_ok());
        assert!(ServerSecret::parse("k1", &b64[..40]).is_err());
        assert!(ServerSecret::parse("K1", &b64).is_err());
        assert!(ServerSecret::parse("k1", "not base64!").is_err());
        assert!(Keyring::new(vec![s.clone(), s]).is_err());
        assert!(format!("{:?}", ServerSecret::parse("k1", &b64).unwrap()).contains("***"));
        assert!(!format!("{:?}", ServerSecret::parse("k1", &b64).unwrap()).contains(&b64));
    }
}
