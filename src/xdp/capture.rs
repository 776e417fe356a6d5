//! A bounded pcap capture of the frames the engine receives and sends, written off the hot
//! path.
//!
//! Each worker holds a [`Tap`]: for every frame it received or built it copies the bytes into
//! a bounded queue (a `try_send`, never a wait) and counts the frames it had to drop because
//! the queue was full. One writer thread ([`Capture`]) drains the queue into the file, in the
//! classic pcap format (microsecond timestamps, Ethernet link type), until the limit in frames
//! or bytes is reached; then it tells the taps to stop copying.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::time::Instant;
use crate::tx::Tx;

/// Frames waiting for the writer, over all workers; beyond it a tap drops (and counts).
pub const QUEUE_FRAMES: usize = 8192;

/// pcap global header: magic (microsecond timestamps), version 2.4, UTC, snaplen, Ethernet.
const MAGIC_US: u32 = 0xa1b2_c3d4;
/// tcpdump's largest (`MAXIMUM_SNAPLEN`): every frame whole, a multi-buffer packet gathered
/// from its descriptor chain too (up to 65 593 bytes, one record).
const SNAPLEN: u32 = 262_144;
const LINKTYPE_ETHERNET: u32 = 1;
/// Bytes of the file header and of each record's header.
const FILE_HEADER_LEN: u64 = 24;
const RECORD_HEADER_LEN: u64 = 16;

/// How much to capture before stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureLimit {
    /// At most this many frames.
    Frames(u64),
    /// A file of at most this many bytes (headers included).
    Bytes(u64),
}

/// Where to capture and how much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureConfig {
    /// The pcap file, created mode 0600 ([`crate::output::create_file`]).
    pub path: PathBuf,
    /// When to stop.
    pub limit: CaptureLimit,
    /// Replace a file already at `path` (never a symbolic link); otherwise it is an error.
    pub overwrite: bool,
}

/// Why a capture could not start.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file could not be created or written.
    #[error(
        "cannot write the pcap file {path}: {source}; give --pcap a path in a writable directory"
    )]
    Create {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Something is in the way of the file (it exists, or is a symbolic link).
    #[error("--pcap: {0}")]
    File(#[source] crate::output::OutputError),
    /// The writer thread could not be spawned.
    #[error("spawning the pcap writer thread: {0}")]
    Spawn(#[source] io::Error),
}

/// What the writer did, for reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureTotals {
    /// Frames written to the file.
    pub written_frames: u64,
    /// Bytes of the file, headers included.
    pub written_bytes: u64,
    /// Whether the limit was reached (later frames were not captured).
    pub limit_reached: bool,
}

/// One tap's counters, reported in its worker's snapshots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TapCounters {
    /// Frames copied into the queue.
    pub queued: u64,
    /// Frames not captured because the queue was full (the writer fell behind).
    pub dropped: u64,
}

struct Record {
    at: Instant,
    bytes: Vec<u8>,
}

struct Shared {
    /// The limit is reached: taps stop copying.
    done: AtomicBool,
    written_frames: AtomicU64,
    written_bytes: AtomicU64,
}

/// A running capture: the writer thread and the queue the taps feed.
pub struct Capture {
    path: PathBuf,
    queue: Sender<Record>,
    shared: Arc<Shared>,
    writer: Option<JoinHandle<io::Result<()>>>,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("path", &self.path)
            .field("totals", &self.totals())
            .finish()
    }
}

/// A pcap file created and headed, with no writer yet: the file is made while the process
/// may still create it there (before it drops its privileges), the writer thread once it no
/// longer can (threads inherit their creator's privileges).
#[derive(Debug)]
pub struct PcapFile {
    path: PathBuf,
    out: BufWriter<File>,
    limit: CaptureLimit,
}

impl PcapFile {
    /// Creates the file and writes the pcap header.
    pub fn create(config: &CaptureConfig) -> Result<PcapFile, CaptureError> {
        let create_error = |source| CaptureError::Create {
            path: config.path.clone(),
            source,
        };
        let file =
            crate::output::create_file(&config.path, config.overwrite).map_err(|e| match e {
                crate::output::OutputError::Io { source, .. } => create_error(source),
                other => CaptureError::File(other),
            })?;
        let mut out = BufWriter::new(file);
        write_file_header(&mut out)
            .and_then(|()| out.flush())
            .map_err(create_error)?;
        Ok(PcapFile {
            path: config.path.clone(),
            out,
            limit: config.limit,
        })
    }

    /// Starts the writer. `now` is the monotonic clock's reading (the workers' clock) at this
    /// moment, to put wall-clock times on frames.
    pub fn start(self, now: Instant) -> Result<Capture, CaptureError> {
        let PcapFile { path, out, limit } = self;
        let (queue, rx) = crossbeam_channel::bounded(QUEUE_FRAMES);
        let shared = Arc::new(Shared {
            done: AtomicBool::new(false),
            written_frames: AtomicU64::new(0),
            written_bytes: AtomicU64::new(FILE_HEADER_LEN),
        });
        let epoch = Epoch::at(now);
        let writer = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("xdptcp-pcap".into())
                .spawn(move || write_records(out, &rx, limit, &shared, epoch))
                .map_err(CaptureError::Spawn)?
        };
        Ok(Capture {
            path,
            queue,
            shared,
            writer: Some(writer),
        })
    }
}

impl Capture {
    /// A tap for one worker.
    pub fn tap(&self) -> Tap {
        Tap {
            queue: self.queue.clone(),
            shared: Arc::clone(&self.shared),
            counters: TapCounters::default(),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What was written so far.
    pub fn totals(&self) -> CaptureTotals {
        CaptureTotals {
            written_frames: self.shared.written_frames.load(Ordering::Relaxed),
            written_bytes: self.shared.written_bytes.load(Ordering::Relaxed),
            limit_reached: self.shared.done.load(Ordering::Relaxed),
        }
    }

    /// Waits for the writer to write what the (now gone) taps queued, and closes the file.
    /// Call it after every tap is dropped (the workers have stopped).
    pub fn finish(mut self) -> io::Result<CaptureTotals> {
        self.join()?;
        Ok(self.totals())
    }

    fn join(&mut self) -> io::Result<()> {
        // The writer ends when the last sender is gone: ours, then the taps'.
        let (closed, _) = crossbeam_channel::bounded(0);
        drop(std::mem::replace(&mut self.queue, closed));
        match self.writer.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the pcap writer thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.join();
    }
}

/// A worker's end of the capture: copies frames into the bounded queue.
pub struct Tap {
    queue: Sender<Record>,
    shared: Arc<Shared>,
    counters: TapCounters,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap")
            .field("counters", &self.counters)
            .finish()
    }
}

impl Tap {
    /// Copies `frame`, seen at `at`, into the queue, or counts it as dropped when the queue
    /// is full. Does nothing once the capture's limit is reached.
    pub fn copy(&mut self, at: Instant, frame: &[u8]) {
        if self.shared.done.load(Ordering::Relaxed) {
            return;
        }
        let record = Record {
            at,
            bytes: frame.to_vec(),
        };
        match self.queue.try_send(record) {
            Ok(()) => self.counters.queued += 1,
            Err(TrySendError::Full(_)) => self.counters.dropped += 1,
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// This tap's counters.
    pub fn counters(&self) -> TapCounters {
        self.counters
    }

    /// A [`Tx`] that copies every frame built through `inner` into this tap.
    pub fn tx<'a, T: Tx>(&'a mut self, inner: &'a mut T, at: Instant) -> TapTx<'a, T> {
        TapTx {
            inner,
            tap: self,
            at,
        }
    }
}

/// A [`Tx`] that captures each frame once it is built, then leaves it where `inner` put it.
#[derive(Debug)]
pub struct TapTx<'a, T> {
    inner: &'a mut T,
    tap: &'a mut Tap,
    at: Instant,
}

impl<T: Tx> Tx for TapTx<'_, T> {
    fn send<F: FnOnce(&mut [u8])>(&mut self, len: usize, build: F) -> bool {
        let (tap, at) = (&mut *self.tap, self.at);
        self.inner.send(len, |frame| {
            build(frame);
            tap.copy(at, frame);
        })
    }
}

/// Wall-clock time of a monotonic instant: both clocks read once, at the start.
#[derive(Debug, Clone, Copy)]
struct Epoch {
    mono: Instant,
    wall_us: u64,
}

impl Epoch {
    fn at(now: Instant) -> Epoch {
        let wall_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        Epoch { mono: now, wall_us }
    }

    fn wall_us(self, at: Instant) -> u64 {
        let since = at.total_micros() as i128 - self.mono.total_micros() as i128;
        (self.wall_us as i128 + since).max(0) as u64
    }
}

fn write_file_header(out: &mut impl Write) -> io::Result<()> {
    out.write_all(&MAGIC_US.to_le_bytes())?;
    out.write_all(&2u16.to_le_bytes())?;
    out.write_all(&4u16.to_le_bytes())?;
    out.write_all(&0i32.to_le_bytes())?; // thiszone: UTC
    out.write_all(&0u32.to_le_bytes())?; // sigfigs
    out.write_all(&SNAPLEN.to_le_bytes())?;
    out.write_all(&LINKTYPE_ETHERNET.to_le_bytes())
}

fn write_record(out: &mut impl Write, wall_us: u64, frame: &[u8]) -> io::Result<()> {
    let caught = &frame[..frame.len().min(SNAPLEN as usize)];
    out.write_all(&((wall_us / 1_000_000) as u32).to_le_bytes())?;
    out.write_all(&((wall_us % 1_000_000) as u32).to_le_bytes())?;
    out.write_all(&(caught.len() as u32).to_le_bytes())?;
    out.write_all(&(frame.len() as u32).to_le_bytes())?;
    out.write_all(caught)
}

/// The writer thread: records until the limit, then drains the queue without writing.
fn write_records(
    mut out: BufWriter<File>,
    queue: &Receiver<Record>,
    limit: CaptureLimit,
    shared: &Shared,
    epoch: Epoch,
) -> io::Result<()> {
    let (mut frames, mut bytes) = (0u64, FILE_HEADER_LEN);
    let mut result = Ok(());
    while let Ok(record) = queue.recv() {
        if shared.done.load(Ordering::Relaxed) {
            continue;
        }
        let len = RECORD_HEADER_LEN + record.bytes.len().min(SNAPLEN as usize) as u64;
        let fits = match limit {
            CaptureLimit::Frames(n) => frames < n,
            CaptureLimit::Bytes(n) => bytes + len <= n,
        };
        if !fits {
            shared.done.store(true, Ordering::Relaxed);
            continue;
        }
        if let Err(e) = write_record(&mut out, epoch.wall_us(record.at), &record.bytes) {
            // A full disk ends the capture, never the server.
            shared.done.store(true, Ordering::Relaxed);
            result = Err(e);
            continue;
        }
        frames += 1;
        bytes += len;
        shared.written_frames.store(frames, Ordering::Relaxed);
        shared.written_bytes.store(bytes, Ordering::Relaxed);
        if queue.is_empty() {
            // Keep the file readable while the server runs.
            result = result.and(out.flush());
        }
    }
    result.and(out.flush())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path under the temp dir for this test, with nothing there yet.
    fn temp(name: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("xdptcp-capture-{name}-{}.pcap", std::process::id()));
        let _ = std::fs::remove_file(&path);
        path
    }

    /// Parses a pcap file back: (timestamp in µs, captured bytes) per record.
    fn read_back(path: &Path) -> Vec<(u64, Vec<u8>)> {
        let b = std::fs::read(path).unwrap();
        assert_eq!(&b[..4], &MAGIC_US.to_le_bytes());
        assert_eq!(u32::from_le_bytes(b[20..24].try_into().unwrap()), 1);
        let mut out = Vec::new();
        let mut at = 24;
        while at < b.len() {
            let word = |o: usize| u32::from_le_bytes(b[at + o..at + o + 4].try_into().unwrap());
            let (sec, usec, incl, orig) = (word(0), word(4), word(8), word(12));
            assert_eq!(incl, orig);
            let data = b[at + 16..at + 16 + incl as usize].to_vec();
            out.push((u64::from(sec) * 1_000_000 + u64::from(usec), data));
            at += 16 + incl as usize;
        }
        out
    }

    #[test]
    fn received_and_built_frames_are_written_in_order_with_wall_clock_times() {
        let path = temp("order");
        let now = Instant::from_secs(1000);
        let capture = start(
            &CaptureConfig {
                path: path.clone(),
                limit: CaptureLimit::Frames(100),
                overwrite: false,
            },
            now,
        )
        .unwrap();
        let mut tap = capture.tap();
        tap.copy(now, &[1, 2, 3]);
        let mut sent: Vec<Vec<u8>> = Vec::new();
        assert!(
            tap.tx(&mut sent, now + std::time::Duration::from_millis(5))
                .send(2, |f| f.copy_from_slice(&[9, 8]))
        );
        assert_eq!(sent, vec![vec![9, 8]], "the frame still goes out");
        assert_eq!(tap.counters().queued, 2);
        drop(tap);
        let totals = capture.finish().unwrap();
        assert_eq!(totals.written_frames, 2);
        let records = read_back(&path);
        let _ = std::fs::remove_file(&path);
        assert_eq!(records[0].1, vec![1, 2, 3]);
        assert_eq!(records[1].1, vec![9, 8]);
        assert_eq!(records[1].0 - records[0].0, 5000, "5 ms apart");
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        assert!(wall.as_micros() as u64 - records[0].0 < 60_000_000);
    }

    #[test]
    fn a_gathered_multi_buffer_frame_is_one_whole_record() {
        let path = temp("gathered");
        let now = Instant::from_secs(1000);
        let capture = start(
            &CaptureConfig {
                path: path.clone(),
                limit: CaptureLimit::Frames(10),
                overwrite: false,
            },
            now,
        )
        .unwrap();
        let mut tap = capture.tap();
        let longest: Vec<u8> = (0..crate::xdp::gather::MAX_FRAME_LEN)
            .map(|i| i as u8)
            .collect();
        tap.copy(now, &longest);
        drop(tap);
        capture.finish().unwrap();
        let records = read_back(&path);
        let _ = std::fs::remove_file(&path);
        assert_eq!(records.len(), 1);
        assert!(records[0].1 == longest, "not cut at 64 KiB");
    }

    #[test]
    fn the_frame_limit_stops_the_capture_and_the_taps() {
        let path = temp("frames");
        let capture = start(
            &CaptureConfig {
                path: path.clone(),
                limit: CaptureLimit::Frames(3),
                overwrite: false,
            },
            Instant::ZERO,
        )
        .unwrap();
        let mut tap = capture.tap();
        for i in 0..10u8 {
            tap.copy(Instant::ZERO, &[i; 60]);
        }
        // The writer sees the fourth frame, then tells the tap to stop copying.
        assert!(Capture::wait_until(|| capture.totals().limit_reached));
        let queued = tap.counters().queued;
        tap.copy(Instant::ZERO, &[0xff; 60]);
        assert_eq!(
            tap.counters(),
            TapCounters { queued, dropped: 0 },
            "no copy after the limit"
        );
        drop(tap);
        let totals = capture.finish().unwrap();
        assert_eq!(totals.written_frames, 3);
        assert!(totals.limit_reached);
        assert_eq!(read_back(&path).len(), 3);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn the_byte_limit_bounds_the_file_size() {
        let path = temp("bytes");
        let limit = 24 + 2 * (16 + 100) + 50;
        let capture = start(
            &CaptureConfig {
                path: path.clone(),
                limit: CaptureLimit::Bytes(limit),
                overwrite: false,
            },
            Instant::ZERO,
        )
        .unwrap();
        let mut tap = capture.tap();
        for _ in 0..5 {
            tap.copy(Instant::ZERO, &[7; 100]);
        }
        drop(tap);
        let totals = capture.finish().unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        let _ = std::fs::remove_file(&path);
        assert_eq!(totals.written_frames, 2);
        assert_eq!(size, 24 + 2 * 116);
        assert!(size <= limit);
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let path = temp("full");
        let capture = start(
            &CaptureConfig {
                path: path.clone(),
                limit: CaptureLimit::Frames(u64::MAX),
                overwrite: false,
            },
            Instant::ZERO,
        )
        .unwrap();
        let mut tap = capture.tap();
        let n = QUEUE_FRAMES as u64 * 4;
        for _ in 0..n {
            tap.copy(Instant::ZERO, &[0; 1500]);
        }
        let c = tap.counters();
        drop(tap);
        let totals = capture.finish().unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(c.queued + c.dropped, n);
        assert_eq!(totals.written_frames, c.queued);
    }

    #[test]
    fn an_unwritable_path_is_an_error_naming_it() {
        let err = start(
            &CaptureConfig {
                path: PathBuf::from("/nonexistent-dir/x.pcap"),
                limit: CaptureLimit::Frames(1),
                overwrite: false,
            },
            Instant::ZERO,
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent-dir/x.pcap"), "{msg}");
        assert!(msg.contains("writable directory"), "{msg}");
    }

    fn start(config: &CaptureConfig, now: Instant) -> Result<Capture, CaptureError> {
        PcapFile::create(config)?.start(now)
    }

    #[test]
    fn an_existing_file_or_a_symlink_is_kept_unless_overwrite_which_still_refuses_links() {
        let path = temp("existing");
        std::fs::write(&path, b"somebody's").unwrap();
        let mut config = CaptureConfig {
            path: path.clone(),
            limit: CaptureLimit::Frames(1),
            overwrite: false,
        };
        let err = start(&config, Instant::ZERO).unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"somebody's");
        config.overwrite = true;
        start(&config, Instant::ZERO).unwrap().finish().unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap().len(),
            FILE_HEADER_LEN as usize
        );
        let link = temp("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        config.path = link.clone();
        let err = start(&config, Instant::ZERO).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let _ = std::fs::remove_file(&link);
        let _ = std::fs::remove_file(&path);
    }

    impl Capture {
        fn wait_until(mut cond: impl FnMut() -> bool) -> bool {
            for _ in 0..500 {
                if cond() {
                    return true;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            false
        }
    }
}
