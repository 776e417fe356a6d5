//! Echo (RFC 862 in spirit): writes back what it receives, with backpressure.
//!
//! Echo consumes only what fits in the send buffer. A peer that sends but does not read fills
//! our send buffer; echo then stops consuming, the receive buffer fills and our advertised
//! window closes, so the peer is throttled by TCP itself and nothing is buffered in the app.

use super::{App, Io};

/// Writes back every byte it receives, consuming only what fits in the send buffer.
#[derive(Debug, Default)]
pub struct Echo {
    bytes: u64,
}

impl Echo {
    /// An echo app with its byte counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes echoed (queued back to peers) over all connections.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl App for Echo {
    type State = ();

    fn on_data(&mut self, _state: &mut (), io: &mut Io<'_>, data: &[u8]) -> usize {
        let n = io.write(data);
        self.bytes = self.bytes.saturating_add(n as u64);
        n
    }

    // The engine re-offers unread bytes right after `on_writable`, so there is nothing to do
    // here. `on_peer_closed` comes only once every byte was consumed, i.e. queued back: the
    // default `close` sends our FIN after the echoed data.
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::Shutdown;
    use crate::app::http::harness::Endpoint;

    #[test]
    fn echoes_what_it_receives() {
        let mut app = Echo::new();
        let mut conn = Endpoint::connect(&mut app, 1024);
        conn.receive(&mut app, b"ping\n");
        assert_eq!(conn.take_sent(&mut app), b"ping\n");
        conn.receive(&mut app, b"pong\n");
        assert_eq!(conn.take_sent(&mut app), b"pong\n");
        assert_eq!(app.bytes(), 10);
    }

    #[test]
    fn stops_consuming_when_the_send_buffer_is_full_and_resumes_on_writable() {
        let mut app = Echo::new();
        let mut conn = Endpoint::connect(&mut app, 4);
        conn.receive(&mut app, b"abcdefghij");
        assert_eq!(conn.unread, b"efghij", "only what fits is consumed");
        conn.receive(&mut app, b"kl");
        assert_eq!(
            conn.unread, b"efghijkl",
            "a full send buffer consumes nothing"
        );
        let mut echoed = Vec::new();
        while echoed.len() < 12 {
            let sent = conn.take_sent(&mut app);
            assert!(!sent.is_empty(), "on_writable must resume the echo");
            assert!(sent.len() <= 4);
            echoed.extend(sent);
        }
        assert_eq!(echoed, b"abcdefghijkl");
        assert!(conn.unread.is_empty());
    }

    #[test]
    fn closes_after_the_queued_data_when_the_peer_closes() {
        let mut app = Echo::new();
        let mut conn = Endpoint::connect(&mut app, 4);
        conn.receive(&mut app, b"abcdef");
        conn.peer_fin(&mut app);
        assert_eq!(
            conn.shutdown,
            Shutdown::Open,
            "unread data: not yet told of the FIN"
        );
        assert_eq!(conn.take_sent(&mut app), b"abcd");
        assert_eq!(conn.take_sent(&mut app), b"ef");
        assert_eq!(conn.shutdown, Shutdown::Close);
    }
}
