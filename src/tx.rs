//! The transmit side the engine writes into: frames are built in place, never copied twice.

/// Somewhere to put outgoing Ethernet frames.
///
/// In production this hands out UMEM frames of the AF_XDP TX ring; in tests a `Vec<Vec<u8>>`.
pub trait Tx {
    /// Reserves a frame of exactly `len` bytes, lets `build` write the whole frame into it and
    /// queues it for transmission. Returns `false`, without calling `build`, when no frame is
    /// free; the caller counts that as a TX drop.
    fn send<F: FnOnce(&mut [u8])>(&mut self, len: usize, build: F) -> bool;
}

impl Tx for Vec<Vec<u8>> {
    fn send<F: FnOnce(&mut [u8])>(&mut self, len: usize, build: F) -> bool {
        let mut frame = vec![0u8; len];
        build(&mut frame);
        self.push(frame);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_tx_keeps_frames_in_order_with_their_exact_length() {
        let mut tx: Vec<Vec<u8>> = Vec::new();
        assert!(tx.send(3, |b| b.copy_from_slice(&[1, 2, 3])));
        assert!(tx.send(1, |b| b[0] = 9));
        assert_eq!(tx, vec![vec![1, 2, 3], vec![9]]);
    }
}
