//! Rooms: many chats on one server. A room is named in the path
//! (`/api/rooms/{room}/…`); every path without a room is the room [`LOBBY`].
//!
//! Each room has its own ids (1, 2, 3… with no gaps), its own history, cursors,
//! resets and presence: a message published in one room wakes nobody in another.

use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};

/// The room of every path that names none (`/api/messages`, `/api/events` …).
pub const LOBBY: &str = "lobby";

/// Longest room name (and `client` id), in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// A valid room name: 1–64 characters of ASCII letters, digits, `-` and `_`, so that it
/// is safe in a URL, a log line, a SQLite row and a Redis key as it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomName(Arc<str>);

/// Why a room name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("room must be 1-{MAX_NAME_CHARS} characters of A-Z, a-z, 0-9, _ and - (got {0:?})")]
pub struct BadRoomName(pub String);

impl RoomName {
    pub fn new(name: &str) -> Result<Self, BadRoomName> {
        if is_name(name) {
            Ok(Self(name.into()))
        } else {
            Err(BadRoomName(name.chars().take(MAX_NAME_CHARS + 1).collect()))
        }
    }

    pub fn lobby() -> Self {
        Self(LOBBY.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 1–64 of `A-Z a-z 0-9 _ -`: the rule for room names and for presence `client` ids.
pub fn is_name(name: &str) -> bool {
    (1..=MAX_NAME_CHARS).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for RoomName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_ascii_words() {
        for good in ["lobby", "maths", "Group-7_b", "x", &"a".repeat(64)] {
            assert_eq!(RoomName::new(good).unwrap().as_str(), good);
        }
        for bad in ["", "a b", "é", "a/b", "a.b", "{x}", "a%20", &"a".repeat(65)] {
            assert!(RoomName::new(bad).is_err(), "{bad:?}");
        }
    }
}
