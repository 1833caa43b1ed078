//! Password hashing: Argon2id with OWASP's parameters, legacy bcrypt verified and upgraded
//! (SPEC §5).
//!
//! Hashing is CPU- and memory-heavy on purpose, so it runs on the blocking pool, never on the
//! async workers, and at most a few hashes run at once: a flood of logins waits its turn instead
//! of stalling other routes or exhausting memory (19 MiB per Argon2 hash).

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

/// Why hashing failed (never because of the password's content).
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The Argon2 implementation refused.
    #[error("argon2: {0}")]
    Argon2(String),
    /// The blocking task died.
    #[error("hashing task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// The concurrency gate closed (shutdown).
    #[error("hasher is shutting down")]
    Closed,
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// Wrong password (or no such user).
    No,
    /// Right password, hash current.
    Yes,
    /// Right password; store this new Argon2id hash in place of the legacy one.
    YesRehash(String),
}

/// Argon2id, m = 19456 KiB, t = 2, p = 1: OWASP's Password Storage Cheat Sheet minimum.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19_456, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes and verifies passwords off the async runtime's worker threads.
#[derive(Clone, Debug)]
pub struct PasswordHasher {
    gate: Arc<Semaphore>,
    /// A hash of a random password, verified against when the user does not exist so that
    /// unknown users cost the same work as wrong passwords (no enumeration by timing).
    dummy: Arc<str>,
}

impl PasswordHasher {
    /// A hasher running at most `parallelism` hashes at once.
    pub fn new(parallelism: usize) -> Result<Self, HashError> {
        let dummy = Self::hash_blocking(&crate::cli::generate_secret())?;
        Ok(Self {
            gate: Arc::new(Semaphore::new(parallelism.max(1))),
            dummy: dummy.into(),
        })
    }

    /// Hashes `password` on the current thread (for the CLI and start-up).
    pub fn hash_blocking(password: &str) -> Result<String, HashError> {
        argon2()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| HashError::Argon2(e.to_string()))
    }

    /// Hashes `password` with Argon2id.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let _permit = self.gate.acquire().await.map_err(|_| HashError::Closed)?;
        tokio::task::spawn_blocking(move || Self::hash_blocking(&password)).await?
    }

    /// Checks `password` against `stored`, or against the dummy hash when `stored` is `None`.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<Verified, HashError> {
        let _permit = self.gate.acquire().await.map_err(|_| HashError::Closed)?;
        let dummy = self.dummy.clone();
        tokio::task::spawn_blocking(move || {
            let Some(stored) = stored else {
                let _ = verify_argon2(&password, &dummy);
                return Ok(Verified::No);
            };
            if is_bcrypt(&stored) {
                // passlib's `$2b$` hashes (SPEC §5 migration); bcrypt reads at most 72 bytes,
                // which is why the hash is replaced on the first successful login.
                if bcrypt::verify(password.as_bytes(), &stored).unwrap_or(false) {
                    return Self::hash_blocking(&password).map(Verified::YesRehash);
                }
                return Ok(Verified::No);
            }
            Ok(if verify_argon2(&password, &stored) {
                Verified::Yes
            } else {
                Verified::No
            })
        })
        .await?
    }
}

fn is_bcrypt(hash: &str) -> bool {
    ["$2a$", "$2b$", "$2y$", "$2x$"]
        .iter()
        .any(|p| hash.starts_with(p))
}

fn verify_argon2(password: &str, stored: &str) -> bool {
    argon2::password_hash::phc::PasswordHash::new(stored)
        .map(|parsed| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn argon2id_hashes_with_owasp_parameters_and_verifies() {
        let hasher = PasswordHasher::new(2).expect("hasher");
        let hash = hasher.hash("correct horse".to_owned()).await.expect("hash");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert_eq!(
            hasher
                .verify("correct horse".to_owned(), Some(hash.clone()))
                .await
                .expect("ok"),
            Verified::Yes
        );
        assert_eq!(
            hasher
                .verify("wrong horse".to_owned(), Some(hash))
                .await
                .expect("ok"),
            Verified::No
        );
        assert_eq!(
            hasher
                .verify("anything".to_owned(), None)
                .await
                .expect("ok"),
            Verified::No
        );
    }

    #[tokio::test]
    async fn passlib_bcrypt_hashes_verify_and_ask_to_be_rehashed() {
        let hasher = PasswordHasher::new(1).expect("hasher");
        // As passlib writes them: `$2b$`, cost 4 here to keep the test fast.
        let legacy = bcrypt::hash_with_result("testpassword", 4)
            .expect("bcrypt")
            .format_for_version(bcrypt::Version::TwoB);
        assert!(legacy.starts_with("$2b$04$"));
        match hasher
            .verify("testpassword".to_owned(), Some(legacy.clone()))
            .await
            .expect("ok")
        {
            Verified::YesRehash(new) => assert!(new.starts_with("$argon2id$")),
            other => panic!("expected a rehash, got {other:?}"),
        }
        assert_eq!(
            hasher
                .verify("nope".to_owned(), Some(legacy))
                .await
                .expect("ok"),
            Verified::No
        );
    }
}
