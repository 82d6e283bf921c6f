//! Stream-key encryption: AES-256-GCM with a random 96-bit nonce per write and the key id stored beside the
//! ciphertext, so keys can be rotated (add a new key, make it active; old rows still decrypt).

use std::collections::HashMap;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use rand::RngCore;

/// Binds ciphertexts to their purpose, so a stream-key ciphertext is useless as anything else.
const AAD: &[u8] = b"backyard:destination.stream_key:v1";

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// A configured key is not base64 of 32 bytes.
    #[error("secrets.stream_key_keys.{0}: must be base64 of 32 bytes")]
    BadKey(String),
    /// No key with the active id.
    #[error("secrets.stream_key_active: no key named {0:?}")]
    NoActiveKey(String),
    /// A row names a key id that is not configured any more.
    #[error("stream key was encrypted with unknown key id {0:?}")]
    UnknownKeyId(String),
    /// Authentication failed: the ciphertext, nonce or key id was altered, or the wrong key is configured.
    #[error("stream key ciphertext failed authentication (tampered or wrong key)")]
    Tampered,
}

/// An encrypted stream key as stored.
pub struct Sealed {
    pub ciphertext: Vec<u8>,
    pub nonce: Vec<u8>,
    pub kid: String,
}

pub struct StreamKeyCipher {
    keys: HashMap<String, Aes256Gcm>,
    active: String,
}

impl StreamKeyCipher {
    pub fn new<'a>(
        keys: impl IntoIterator<Item = (&'a String, &'a String)>,
        active: &str,
    ) -> Result<Self, CryptoError> {
        let mut map = HashMap::new();
        for (id, b64) in keys {
            let raw =
                base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| CryptoError::BadKey(id.clone()))?;
            let cipher = Aes256Gcm::new_from_slice(&raw).map_err(|_| CryptoError::BadKey(id.clone()))?;
            map.insert(id.clone(), cipher);
        }
        if !map.contains_key(active) {
            return Err(CryptoError::NoActiveKey(active.to_owned()));
        }
        Ok(Self { keys: map, active: active.to_owned() })
    }

    pub fn seal(&self, plaintext: &str) -> Sealed {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = self.keys[&self.active]
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext.as_bytes(), aad: AAD })
            .expect("the active key exists (checked in new), and AES-GCM encryption of a short input cannot fail");
        Sealed { ciphertext, nonce: nonce.to_vec(), kid: self.active.clone() }
    }

    pub fn open(&self, ciphertext: &[u8], nonce: &[u8], kid: &str) -> Result<String, CryptoError> {
        let cipher = self.keys.get(kid).ok_or_else(|| CryptoError::UnknownKeyId(kid.to_owned()))?;
        if nonce.len() != 12 {
            return Err(CryptoError::Tampered);
        }
        let plain = cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: AAD })
            .map_err(|_| CryptoError::Tampered)?;
        String::from_utf8(plain).map_err(|_| CryptoError::Tampered)
    }
}

/// What the API shows instead of a stream key: its last four characters at most, and only when the key is long
/// enough that they give little away.
pub fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() >= 12 {
        format!("••••{}", chars[chars.len() - 4..].iter().collect::<String>())
    } else {
        "••••".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> StreamKeyCipher {
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let keys = [("k1".to_owned(), key)];
        StreamKeyCipher::new(keys.iter().map(|(a, b)| (a, b)), "k1").unwrap()
    }

    #[test]
    fn same_key_twice_gives_different_ciphertexts_and_both_open() {
        let c = cipher();
        let a = c.seal("abcd-efgh-ijkl-mnop");
        let b = c.seal("abcd-efgh-ijkl-mnop");
        assert_ne!(a.ciphertext, b.ciphertext);
        assert_ne!(a.nonce, b.nonce);
        assert_eq!(c.open(&a.ciphertext, &a.nonce, &a.kid).unwrap(), "abcd-efgh-ijkl-mnop");
        assert_eq!(c.open(&b.ciphertext, &b.nonce, &b.kid).unwrap(), "abcd-efgh-ijkl-mnop");
    }

    #[test]
    fn tampered_ciphertext_fails_with_a_clear_error() {
        let c = cipher();
        let mut s = c.seal("live_123456789_abcdefghijklmnop");
        s.ciphertext[0] ^= 1;
        let err = c.open(&s.ciphertext, &s.nonce, &s.kid).unwrap_err();
        assert!(matches!(err, CryptoError::Tampered));
        assert!(err.to_string().contains("tampered"));
        assert!(matches!(c.open(&s.ciphertext, &s.nonce, "k9"), Err(CryptoError::UnknownKeyId(_))));
    }

    #[test]
    fn mask_shows_at_most_the_last_four() {
        assert_eq!(mask("abcd-efgh-ijkl-mnop"), "••••mnop");
        assert_eq!(mask("short"), "••••");
    }
}
