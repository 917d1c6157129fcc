//! The value of `--store`, and opening the store it names.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use super::redis::{FOLLOWER_LAG_GRACE, RedisStore};
use super::rooms::Rooms;
use super::sqlite::SqliteStore;
use super::store::{MemoryStore, Store, StoreError};

/// The value of `--store`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    Memory,
    Sqlite(std::path::PathBuf),
    Redis(String),
}

impl FromStr for StoreSpec {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        if spec == "memory" {
            Ok(Self::Memory)
        } else if let Some(path) = spec.strip_prefix("sqlite:").filter(|p| !p.is_empty()) {
            Ok(Self::Sqlite(path.into()))
        } else if spec.starts_with("redis://") {
            Ok(Self::Redis(spec.to_owned()))
        } else {
            Err(format!(
                "unknown store {spec:?}: use memory, sqlite:PATH or redis://HOST:PORT"
            ))
        }
    }
}

impl StoreSpec {
    /// How long a cursor ahead of this instance's view may only mean that the view has
    /// not read the shared log that far yet. Only a shared log lags; elsewhere a cursor
    /// ahead means a restart that lost messages, and is reset at once.
    pub fn ahead_grace(&self) -> Duration {
        match self {
            Self::Redis(_) => FOLLOWER_LAG_GRACE,
            Self::Memory | Self::Sqlite(_) => Duration::ZERO,
        }
    }
}

impl fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("memory"),
            Self::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Self::Redis(url) => f.write_str(url),
        }
    }
}

/// Opens the store `spec` names, loads the newest `keep` messages of each room it
/// holds into that room's view, and starts whatever keeps the views fed.
pub async fn open(
    spec: &StoreSpec,
    rooms: Arc<Rooms>,
    keep: usize,
) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match spec {
        StoreSpec::Memory => Arc::new(MemoryStore),
        StoreSpec::Sqlite(path) => Arc::new(SqliteStore::open(path, rooms, keep).await?),
        StoreSpec::Redis(url) => Arc::new(RedisStore::open(url, rooms, keep).await?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_specs_parse_and_print_back() {
        for spec in ["memory", "sqlite:chat.db", "redis://127.0.0.1:6379"] {
            assert_eq!(spec.parse::<StoreSpec>().unwrap().to_string(), spec);
        }
        for bad in ["", "sqlite:", "postgres://x", "Memory"] {
            assert!(bad.parse::<StoreSpec>().is_err(), "{bad}");
        }
    }
}
