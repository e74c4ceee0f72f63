//! The console's login sessions: a browser that entered a valid token on the login page gets
//! a random session id in a cookie instead of keeping the token; the id maps to the token's
//! role, in memory, until it expires.
//!
//! A logout closes its session at once. Sessions end with the process (a restart asks for the token again) and are bounded:
//! at [`SESSIONS_MAX`] the session closest to expiry makes room for a new one.

use std::collections::HashMap;
use std::sync::Mutex;

use ring::rand::{SecureRandom, SystemRandom};

use super::HttpToken;

/// Most sessions held at once.
pub(crate) const SESSIONS_MAX: usize = 4_096;
/// How long a session lasts after login, in ms: a working day.
pub(crate) const SESSION_TTL_MS: i64 = 8 * 3_600_000;
/// The cookie that carries the session id.
pub(crate) const SESSION_COOKIE: &str = "keel_session";

/// Who a session belongs to.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// Whether the token was an admin token.
    pub(crate) admin: bool,
    expires_ms: i64,
}

/// The sessions of one server.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Opens a session for `token` at `now_ms`; returns its id (64 hex digits).
    pub(crate) fn open(&self, token: &HttpToken, now_ms: i64) -> String {
        let mut random = [0u8; 32];
        SystemRandom::new()
            .fill(&mut random)
            .expect("the system's random source works");
        let id: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let session = Session {
            admin: token.admin,
            expires_ms: now_ms + SESSION_TTL_MS,
        };
        let mut by_id = self.by_id.lock().expect("sessions lock");
        if by_id.len() >= SESSIONS_MAX {
            by_id.retain(|_, session| session.expires_ms > now_ms);
        }
        if by_id.len() >= SESSIONS_MAX
            && let Some(soonest) = by_id
                .iter()
                .min_by_key(|(_, session)| session.expires_ms)
                .map(|(id, _)| id.clone())
        {
            by_id.remove(&soonest);
        }
        by_id.insert(id.clone(), session);
        id
    }

    /// Ends the session with this id (a logout): the cookie no longer works anywhere.
    /// Whether there was one.
    pub(crate) fn close(&self, id: &str) -> bool {
        self.by_id
            .lock()
            .expect("sessions lock")
            .remove(id)
            .is_some()
    }

    /// The live session with this id, if any.
    pub(crate) fn find(&self, id: &str, now_ms: i64) -> Option<Session> {
        let by_id = self.by_id.lock().expect("sessions lock");
        by_id
            .get(id)
            .filter(|session| session.expires_ms > now_ms)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_lives_until_it_expires_and_the_table_is_bounded() {
        let sessions = Sessions::default();
        let token = HttpToken {
            name: "ops".into(),
            sha256: [0; 32],
            admin: true,
        };
        let id = sessions.open(&token, 1_000);
        assert_eq!(id.len(), 64);
        assert!(
            sessions
                .find(&id, 1_000 + SESSION_TTL_MS - 1)
                .unwrap()
                .admin
        );
        assert!(sessions.find(&id, 1_000 + SESSION_TTL_MS).is_none());
        assert!(sessions.find("not-a-session", 1_000).is_none());
        let other = sessions.open(&token, 1_000);
        assert!(sessions.close(&other));
        assert!(
            sessions.find(&other, 1_001).is_none(),
            "a closed session is gone"
        );
        assert!(!sessions.close(&other));
        for n in 0..SESSIONS_MAX {
            sessions.open(&token, 2_000 + n as i64);
        }
        // The first session was the closest to expiry: it made room.
        assert!(sessions.find(&id, 2_000).is_none());
        assert_eq!(sessions.by_id.lock().unwrap().len(), SESSIONS_MAX);
    }
}
