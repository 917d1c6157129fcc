//! The five transports by name: the one list the API, the command line, `/metrics`,
//! `/api/stats`, the bench and its charts derive from. (On the page, the same list is
//! `web/transports/index.js`.)
//!
//! Adding a fifth technique starts here: a new [`Transport`] variant makes the compiler
//! point at every `match` that must say what it does (its names here, the bench's
//! client and chart colour), and everything that iterates [`Transport::ALL`]
//! (counters, metrics, stats) picks it up without an edit.

use clap::ValueEnum;
use serde::{Serialize, Serializer};

/// A way pushlab pushes the chat to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum Transport {
    /// `short-poll` on the command line.
    #[value(alias = "short_poll")]
    ShortPoll,
    #[value(alias = "long_poll")]
    LongPoll,
    Sse,
    #[value(alias = "ws")]
    Websocket,
    #[value(alias = "wt")]
    Webtransport,
}

impl Transport {
    /// Every transport, in declaration order (so `ALL[t as usize] == t`).
    pub const ALL: [Self; 5] = [
        Self::ShortPoll,
        Self::LongPoll,
        Self::Sse,
        Self::Websocket,
        Self::Webtransport,
    ];

    /// The name in the API (`/api/stats`, `/api/presence`), in metric labels and on the
    /// page: `short_poll`, `long_poll`, `sse`, `websocket`, `webtransport`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::ShortPoll => "short_poll",
            Self::LongPoll => "long_poll",
            Self::Sse => "sse",
            Self::Websocket => "websocket",
            Self::Webtransport => "webtransport",
        }
    }

    /// Where it is served, under a room's prefix: `/api/rooms/{room}/<endpoint>`, or
    /// `/api/<endpoint>` for the lobby (see [`path`](super::path)).
    pub const fn endpoint(self) -> &'static str {
        match self {
            Self::ShortPoll => "messages",
            Self::LongPoll => "messages/long-poll",
            Self::Sse => "events",
            Self::Websocket => "ws",
            Self::Webtransport => "webtransport",
        }
    }

    /// The name in tables and charts.
    pub const fn title(self) -> &'static str {
        match self {
            Self::ShortPoll => "short poll",
            Self::LongPoll => "long poll",
            Self::Sse => "SSE",
            Self::Websocket => "WebSocket",
            Self::Webtransport => "WebTransport",
        }
    }

    /// Push transports hold a connection open and the server writes when it likes;
    /// pollers come and go.
    pub const fn is_push(self) -> bool {
        match self {
            Self::ShortPoll | Self::LongPoll => false,
            Self::Sse | Self::Websocket | Self::Webtransport => true,
        }
    }

    /// Push transports and held long polls keep a connection busy while they wait;
    /// these count against the connection caps.
    pub const fn holds_connection(self) -> bool {
        match self {
            Self::ShortPoll => false,
            Self::LongPoll | Self::Sse | Self::Websocket | Self::Webtransport => true,
        }
    }
}

impl Serialize for Transport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_transport_in_declaration_order() {
        for (i, transport) in Transport::ALL.into_iter().enumerate() {
            assert_eq!(transport as usize, i);
        }
    }

    #[test]
    fn transports_are_named_as_on_the_command_line() {
        let parse = |name| Transport::from_str(name, true);
        assert_eq!(parse("short-poll"), Ok(Transport::ShortPoll));
        assert_eq!(parse("long_poll"), Ok(Transport::LongPoll));
        assert_eq!(parse("SSE"), Ok(Transport::Sse));
        assert_eq!(parse("ws"), Ok(Transport::Websocket));
        assert_eq!(parse("wt"), Ok(Transport::Webtransport));
        assert!(parse("carrier-pigeon").is_err());
    }

    #[test]
    fn the_api_name_is_the_json_name() {
        for transport in Transport::ALL {
            let json = serde_json::to_value(transport).unwrap();
            assert_eq!(json, transport.name());
        }
    }
}
