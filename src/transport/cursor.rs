//! What every transport shares: the query parameters, and turning `since` (or SSE's
//! `Last-Event-ID`) into a hub [`Cursor`].
//!
//! Parameters arrive as strings and are parsed here, so that `since=abc` or
//! `limit=-1` gets a `400` that names the parameter instead of a generic rejection.
//! Unknown parameters (a cache-buster such as `_=1700000000`) are ignored.

use std::borrow::Cow;

use crate::error::ApiError;
use crate::extract::FromQuery;
use crate::hub::Cursor;

/// Default and largest page size of a poll answer.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// `since`, `limit` and `timeout`, as every transport's query string may carry them.
#[derive(Debug, Default)]
pub struct CursorParams {
    pub since: Number,
    pub limit: Number,
    pub timeout: Number,
}

/// A non-negative integer parameter, parsed as it is read: what a handler refuses,
/// it refuses by the parameter's name, with what the client sent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum Number {
    #[default]
    Absent,
    Valid(u64),
    Invalid(String),
}

impl Number {
    pub fn read(raw: &str) -> Self {
        match raw.trim().parse() {
            Ok(n) => Self::Valid(n),
            Err(_) => Self::Invalid(raw.to_owned()),
        }
    }

    /// The number, if given, or a 400 that names the parameter.
    pub fn get(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self {
            Self::Absent => Ok(None),
            Self::Valid(n) => Ok(Some(*n)),
            Self::Invalid(raw) => Err(not_a_number(name, raw)),
        }
    }
}

impl FromQuery for CursorParams {
    fn pair(&mut self, key: &str, value: Cow<'_, str>) {
        let field = match key {
            "since" => &mut self.since,
            "limit" => &mut self.limit,
            "timeout" => &mut self.timeout,
            _ => return,
        };
        *field = Number::read(&value);
    }
}

impl CursorParams {
    /// `since=ID` → after that id; absent → the recent messages.
    pub fn cursor(&self) -> Result<Cursor, ApiError> {
        Ok(self
            .since
            .get("since")?
            .map_or(Cursor::Recent, Cursor::After))
    }

    /// `limit=N`: 1 or more (a page of 0 would move no cursor), at most [`MAX_LIMIT`]
    /// (larger values are clamped), [`DEFAULT_LIMIT`] when absent.
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.limit.get("limit")? {
            None => Ok(DEFAULT_LIMIT),
            Some(0) => Err(ApiError::BadRequest("limit must be at least 1".into())),
            Some(n) => Ok(n.min(MAX_LIMIT as u64) as usize),
        }
    }
}

/// A cursor from the named parameter or header; `None` means no cursor.
pub fn cursor_from(name: &str, raw: Option<&str>) -> Result<Cursor, ApiError> {
    Ok(match raw {
        None => Cursor::Recent,
        Some(raw) => Cursor::After(Number::read(raw).get(name)?.unwrap_or_default()),
    })
}

/// Says which parameter was not a non-negative integer, and what it was.
fn not_a_number(name: &str, raw: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "{name} must be a non-negative integer (got {raw:?})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(since: Option<&str>, limit: Option<&str>) -> CursorParams {
        let mut params = CursorParams::default();
        for (key, value) in [("since", since), ("limit", limit)] {
            if let Some(value) = value {
                params.pair(key, value.into());
            }
        }
        params
    }

    #[test]
    fn since_is_optional_and_must_be_a_non_negative_integer() {
        assert_eq!(params(None, None).cursor().unwrap(), Cursor::Recent);
        assert_eq!(params(Some("7"), None).cursor().unwrap(), Cursor::After(7));
        for bad in ["", "-1", "abc", "1.5", "99999999999999999999999"] {
            let err = params(Some(bad), None).cursor().unwrap_err();
            assert!(err.to_string().starts_with("since must be"), "{bad}: {err}");
        }
    }

    #[test]
    fn limit_defaults_clamps_and_refuses_zero() {
        assert_eq!(params(None, None).limit().unwrap(), DEFAULT_LIMIT);
        assert_eq!(params(None, Some("5")).limit().unwrap(), 5);
        assert_eq!(params(None, Some("5000")).limit().unwrap(), MAX_LIMIT);
        assert!(params(None, Some("0")).limit().is_err());
        assert!(params(None, Some("-3")).limit().is_err());
    }
}
