//! Password hashing (CHAT-R21): Argon2id, m = 19456 KiB, t = 2, p = 1, PHC strings.
//!
//! Hashing costs ~20 MiB and tens of milliseconds, so it runs on the blocking pool behind a
//! semaphore sized to the core count: a login burst queues instead of starving the async
//! workers or multiplying memory. Unknown logins verify against a fixed dummy hash so that
//! "no such user" and "wrong password" take the same time.

use std::sync::{Arc, OnceLock};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

/// Argon2 memory cost in KiB.
pub const ARGON2_M_KIB: u32 = 19_456;
/// Argon2 iterations.
pub const ARGON2_T: u32 = 2;
/// Argon2 lanes.
pub const ARGON2_P: u32 = 1;

fn hasher() -> Argon2<'static> {
    let params = Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None).expect("constant params");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn gate() -> &'static Arc<Semaphore> {
    static GATE: OnceLock<Arc<Semaphore>> = OnceLock::new();
    GATE.get_or_init(|| {
        let n = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Arc::new(Semaphore::new(n))
    })
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_blocking("rustchat-dummy-password").unwrap_or_default())
}

fn hash_blocking(password: &str) -> Option<String> {
    let mut salt = [0u8; 16];
    rand::fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).ok()?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .ok()
        .map(|h| h.to_string())
}

fn verify_blocking(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => hasher().verify_password(password.as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

/// Hashes a password on the blocking pool; None only if the hasher failed.
pub async fn hash(password: String) -> Option<String> {
    let _permit = gate().clone().acquire_owned().await.ok()?;
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .ok()
        .flatten()
}

/// Verifies a password against a stored PHC hash, or against the dummy hash when there is
/// none (same cost, always false).
pub async fn verify(password: String, phc: Option<String>) -> bool {
    let Ok(_permit) = gate().clone().acquire_owned().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || match phc {
        Some(h) => verify_blocking(&password, &h),
        None => {
            let _ = verify_blocking(&password, dummy_hash());
            false
        }
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_verifies_only_the_same_password() {
        let h = hash("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("correct horse".into(), Some(h.clone())).await);
        assert!(!verify("wrong horse".into(), Some(h)).await);
    }

    #[tokio::test]
    async fn unknown_user_never_verifies() {
        assert!(!verify("anything".into(), None).await);
        assert!(!verify("x".into(), Some("not a phc string".into())).await);
    }
}
