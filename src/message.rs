//! The chat message, as clients send it and as the hub stores it.
//!
//! A client sends a [`NewMessage`] (`author`, `text`); the hub turns a valid one into a
//! [`Message`] by giving it an id, a server timestamp and the transport it came in on
//! ([`Via`]). Validation lives here, next to the type, so every way in (HTTP POST,
//! WebSocket frame) applies the same rules.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// Longest author name, in characters, after trimming.
pub const MAX_AUTHOR_CHARS: usize = 32;
/// Longest message text, in characters.
pub const MAX_TEXT_CHARS: usize = 2000;
/// Largest request body accepted, and largest WebSocket message (a message is at most
/// 2000 characters, so this leaves room for any encoding of it).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A message the hub has accepted: it has an id and a timestamp and will never change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// 1, 2, 3… strictly increasing, no gaps; the cursor every transport resumes from.
    pub id: u64,
    pub author: String,
    /// Stored exactly as sent; escaping is the page's job.
    pub text: String,
    /// When the hub accepted it (server clock, millisecond precision, UTC).
    #[serde(serialize_with = "rfc3339_millis")]
    pub sent_at: DateTime<Utc>,
    /// How the sender reached us, so the page can show a WebSocket message arriving by SSE.
    pub via: Via,
}

/// The way a message entered the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    Http,
    Websocket,
    Webtransport,
}

/// What a client sends: unvalidated, straight from JSON.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub author: String,
    pub text: String,
}

impl<'de> Deserialize<'de> for NewMessage {
    /// Only a JSON object will do: serde's derive would also take `["alice", "hi"]`,
    /// which no careful client means to send.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Fields {
            author: String,
            text: String,
        }
        let object = serde_json::Map::deserialize(deserializer)?;
        let Fields { author, text } =
            Fields::deserialize(serde_json::Value::Object(object)).map_err(de::Error::custom)?;
        Ok(Self { author, text })
    }
}

/// Why a [`NewMessage`] was refused, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("author must not be blank")]
    BlankAuthor,
    #[error("author must be at most {MAX_AUTHOR_CHARS} characters after trimming (got {0})")]
    AuthorTooLong(usize),
    #[error("text must not be empty")]
    EmptyText,
    #[error("text must be at most {MAX_TEXT_CHARS} characters (got {0})")]
    TextTooLong(usize),
}

/// A [`NewMessage`] that passed validation: the author is trimmed, the text untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub author: String,
    pub text: String,
    pub via: Via,
}

impl NewMessage {
    /// Checks the limits and trims the author; the text is kept byte for byte.
    pub fn validate(self, via: Via) -> Result<Draft, Invalid> {
        let author = self.author.trim();
        let author_chars = author.chars().count();
        if author_chars == 0 {
            return Err(Invalid::BlankAuthor);
        }
        if author_chars > MAX_AUTHOR_CHARS {
            return Err(Invalid::AuthorTooLong(author_chars));
        }
        let text_chars = self.text.chars().count();
        if self.text.trim().is_empty() {
            return Err(Invalid::EmptyText);
        }
        if text_chars > MAX_TEXT_CHARS {
            return Err(Invalid::TextTooLong(text_chars));
        }
        Ok(Draft {
            author: author.to_owned(),
            text: self.text,
            via,
        })
    }
}

fn rfc3339_millis<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(author: &str, text: &str) -> NewMessage {
        NewMessage {
            author: author.into(),
            text: text.into(),
        }
    }

    #[test]
    fn author_is_trimmed_and_text_kept_exactly() {
        let draft = new("  alice ", " <b>hi</b> \n")
            .validate(Via::Http)
            .unwrap();
        assert_eq!(draft.author, "alice");
        assert_eq!(draft.text, " <b>hi</b> \n");
    }

    #[test]
    fn limits_count_characters_not_bytes() {
        assert!(new(&"字".repeat(32), "x").validate(Via::Http).is_ok());
        assert_eq!(
            new(&"字".repeat(33), "x").validate(Via::Http),
            Err(Invalid::AuthorTooLong(33))
        );
        assert!(new("a", &"é".repeat(2000)).validate(Via::Http).is_ok());
        assert_eq!(
            new("a", &"é".repeat(2001)).validate(Via::Http),
            Err(Invalid::TextTooLong(2001))
        );
    }

    #[test]
    fn blank_fields_are_refused() {
        assert_eq!(
            new(" \t", "x").validate(Via::Http),
            Err(Invalid::BlankAuthor)
        );
        assert_eq!(new("a", "").validate(Via::Http), Err(Invalid::EmptyText));
        assert_eq!(
            new("a", "  \n").validate(Via::Http),
            Err(Invalid::EmptyText)
        );
    }

    #[test]
    fn sent_at_serializes_with_milliseconds_in_utc() {
        let at = DateTime::parse_from_rfc3339("2026-11-24T10:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        let m = Message {
            id: 42,
            author: "alice".into(),
            text: "hi".into(),
            sent_at: at,
            via: Via::Websocket,
        };
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["sent_at"], "2026-11-24T10:00:00.123Z");
        assert_eq!(json["via"], "websocket");
    }
}
