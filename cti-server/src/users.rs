//! Web users: password hashing, login throttling and who a request is. Policy and pure
//! functions; the store keeps users, sessions and the audit log, the API asks.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::access::Role;

/// An Argon2id hash of `password` (a PHC string, salt included).
pub fn hash_password(password: &str) -> String {
    use rand::RngCore;
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes make a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2 with default parameters hashes any password")
        .to_string()
}

/// True when `password` matches the PHC string `hash` (false for a malformed hash).
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A new session token: 40 characters from a CSPRNG (about 238 bits).
pub fn new_token() -> String {
    crate::sip::types::random_token(40)
}

/// What the store keeps of a token: its SHA-256, so a copy of the database logs nobody in.
pub fn token_digest(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// Who makes a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user name (an agent's extension), or `api-token` for the configured token.
    pub name: String,
    pub role: Role,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    pub fn is_supervisor_or_admin(&self) -> bool {
        matches!(self.role, Role::Supervisor | Role::Admin)
    }
}

/// Login throttling: after `limit` failed logins within `window` for one user name, or from
/// one address, further attempts are refused until the oldest failure leaves the window. A
/// success clears the user's failures (not the address's: one good account does not
/// unlock guessing at others from the same place).
#[derive(Debug)]
pub struct Throttle {
    limit: usize,
    window: Duration,
    failures: HashMap<String, VecDeque<Instant>>,
}

impl Throttle {
    pub fn new(limit: usize, window: Duration) -> Throttle {
        Throttle {
            limit: limit.max(1),
            window,
            failures: HashMap::new(),
        }
    }

    fn key(kind: &str, value: &str) -> String {
        format!("{kind}:{value}")
    }

    /// `Err(wait)` while the user or the address is held back.
    pub fn check(&mut self, user: &str, addr: &str, now: Instant) -> Result<(), Duration> {
        let mut wait = Duration::ZERO;
        for k in [Self::key("user", user), Self::key("addr", addr)] {
            if let Some(q) = self.failures.get_mut(&k) {
                while q
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= self.window)
                {
                    q.pop_front();
                }
                if q.len() >= self.limit
                    && let Some(oldest) = q.front()
                {
                    wait = wait.max(self.window - now.duration_since(*oldest));
                }
            }
        }
        if wait.is_zero() { Ok(()) } else { Err(wait) }
    }

    pub fn failed(&mut self, user: &str, addr: &str, now: Instant) {
        for k in [Self::key("user", user), Self::key("addr", addr)] {
            self.failures.entry(k).or_default().push_back(now);
        }
        // Forget the quiet ones now and then, so guessing at random names cannot grow the
        // map without bound.
        if self.failures.len() > 10_000 {
            let window = self.window;
            self.failures
                .retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        }
    }

    pub fn succeeded(&mut self, user: &str) {
        self.failures.remove(&Self::key("user", user));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_their_password_and_are_salted() {
        let h = hash_password("demo1001");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("demo1001", &h));
        assert!(!verify_password("demo1002", &h));
        assert!(!verify_password("demo1001", "not a hash"));
        assert_ne!(h, hash_password("demo1001"), "a fresh salt each time");
    }

    #[test]
    fn tokens_are_long_random_and_stored_as_digests() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 40);
        assert_ne!(a, b);
        assert_eq!(token_digest(&a).len(), 64);
        assert_ne!(token_digest(&a), a);
    }

    #[test]
    fn five_failures_hold_a_user_back_until_the_window_moves_on() {
        let mut t = Throttle::new(5, Duration::from_secs(300));
        let t0 = Instant::now();
        for i in 0..5 {
            assert_eq!(t.check("1001", "10.0.0.1", t0), Ok(()));
            t.failed("1001", &format!("10.0.0.{i}"), t0 + Duration::from_secs(i));
        }
        let later = t0 + Duration::from_secs(10);
        assert_eq!(
            t.check("1001", "10.0.0.9", later),
            Err(Duration::from_secs(290))
        );
        assert_eq!(
            t.check("1002", "10.0.0.9", later),
            Ok(()),
            "other users are free"
        );
        // The first failure leaves the window: one more try.
        assert_eq!(
            t.check("1001", "10.0.0.9", t0 + Duration::from_secs(300)),
            Ok(())
        );
    }

    #[test]
    fn one_address_guessing_at_many_users_is_held_back_and_a_success_does_not_free_it() {
        let mut t = Throttle::new(5, Duration::from_secs(300));
        let t0 = Instant::now();
        for i in 0..5 {
            t.failed(&format!("user{i}"), "10.0.0.1", t0);
        }
        assert!(t.check("1001", "10.0.0.1", t0).is_err());
        t.succeeded("1001");
        assert!(t.check("1001", "10.0.0.1", t0).is_err());
        assert_eq!(t.check("1001", "10.0.0.2", t0), Ok(()));
        // A user's own success clears their failures (from another address).
        t.failed("1002", "10.0.0.3", t0);
        t.succeeded("1002");
        assert_eq!(t.check("1002", "10.0.0.4", t0), Ok(()));
    }
}
