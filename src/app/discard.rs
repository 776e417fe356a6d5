//! Discard (RFC 863 in spirit): consumes every byte it receives and never answers.

use super::{App, Io};

/// Consumes and counts everything it receives; closes when the peer closes.
#[derive(Debug, Default)]
pub struct Discard {
    bytes: u64,
}

impl Discard {
    /// A discard app with its byte counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes received (and thrown away) over all connections.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl App for Discard {
    type State = ();

    fn on_data(&mut self, _state: &mut (), _io: &mut Io<'_>, data: &[u8]) -> usize {
        self.bytes = self.bytes.saturating_add(data.len() as u64);
        data.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Shutdown;
    use crate::app::http::harness::Endpoint;

    #[test]
    fn counts_and_consumes_everything_without_answering() {
        let mut app = Discard::new();
        let mut conn = Endpoint::connect(&mut app, 4);
        conn.receive(&mut app, b"hello ");
        conn.receive(&mut app, &[0u8; 10_000]);
        assert!(conn.unread.is_empty(), "discard never leaves bytes unread");
        assert!(conn.take_sent(&mut app).is_empty());
        assert_eq!(app.bytes(), 10_006);
    }

    #[test]
    fn closes_when_the_peer_closes() {
        let mut app = Discard::new();
        let mut conn = Endpoint::connect(&mut app, 4);
        conn.receive(&mut app, b"bye");
        conn.peer_fin(&mut app);
        assert_eq!(conn.shutdown, Shutdown::Close);
    }
}
