//! The extractors the handlers read requests with, answering a malformed request with
//! [`ApiError`] (`{"error": …}`) instead of axum's plain-text rejection.

use std::borrow::Cow;
use std::convert::Infallible;

use axum::extract::{FromRequest, FromRequestParts};
use axum::http::request::Parts;

use crate::error::ApiError;

/// The query string, read into `T` in one pass over its `key=value` pairs. Unknown
/// keys (a cache-buster such as `_=1700000000`) are ignored, and a repeated key keeps
/// its last value, so no query string is refused here: each value is checked where it
/// is used, by the parameter's name. (axum's `Query` goes through serde and records
/// the path of every field: a sixth of a long poll's cost, for four optional strings.)
pub struct Query<T>(pub T);

/// A type read from a query string, one pair at a time.
pub trait FromQuery: Default {
    fn pair(&mut self, key: &str, value: Cow<'_, str>);
}

/// Two types from the same query string, in the same pass.
impl<A: FromQuery, B: FromQuery> FromQuery for (A, B) {
    fn pair(&mut self, key: &str, value: Cow<'_, str>) {
        self.0.pair(key, value.clone());
        self.1.pair(key, value);
    }
}

impl<T: FromQuery, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Self(read_query(parts.uri.query())))
    }
}

/// Reads a query string into `T` (see [`Query`]).
pub fn read_query<T: FromQuery>(query: Option<&str>) -> T {
    let mut read = T::default();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        read.pair(&key, value);
    }
    read
}

#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);
