//! Bulk transfer through two engines on the simulated link: how many payload bytes per
//! second of engine (CPU) time, with a clean link and with 1 % loss each way.
//!
//! Each iteration opens a connection, moves 4 MiB from client to server and closes; criterion
//! reports throughput in bytes per second.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use xdptcp::app::{App, Io};
use xdptcp::sim::{LinkConfig, Pair, configs};

const LEN: usize = 4 * 1024 * 1024;

/// Writes `LEN` bytes as the send buffer allows, then closes.
struct Source {
    chunk: Vec<u8>,
}

#[derive(Default)]
struct Written(usize);

impl Source {
    fn fill(&self, st: &mut Written, io: &mut Io<'_>) {
        while st.0 < LEN {
            let n = io.write(&self.chunk[..(LEN - st.0).min(self.chunk.len())]);
            if n == 0 {
                return;
            }
            st.0 += n;
        }
        io.close();
    }
}

impl App for Source {
    type State = Written;

    fn on_connected(&mut self, st: &mut Written, io: &mut Io<'_>) {
        self.fill(st, io);
    }

    fn on_writable(&mut self, st: &mut Written, io: &mut Io<'_>) {
        self.fill(st, io);
    }

    fn on_data(&mut self, _: &mut Written, _: &mut Io<'_>, data: &[u8]) -> usize {
        data.len()
    }
}

/// Reads everything, counting.
struct Sink {
    received: Rc<Cell<usize>>,
}

impl App for Sink {
    type State = ();

    fn on_data(&mut self, _: &mut (), _: &mut Io<'_>, data: &[u8]) -> usize {
        self.received.set(self.received.get() + data.len());
        data.len()
    }
}

fn transfer(link: LinkConfig) {
    let (ccfg, scfg) = configs(link.seed);
    let received = Rc::new(Cell::new(0));
    let client = Source {
        chunk: vec![0x5a; 64 * 1024],
    };
    let server = Sink {
        received: received.clone(),
    };
    let mut p = Pair::new(ccfg, client, scfg, server, link);
    p.connect(40_000).expect("connect");
    let limit = p.now + Duration::from_secs(600);
    assert!(p.run_until(limit, |_| received.get() == LEN));
}

fn bulk(c: &mut Criterion) {
    let mut group = c.benchmark_group("bulk_4MiB");
    group.throughput(Throughput::Bytes(LEN as u64));
    group.sample_size(10);
    for (name, loss) in [("no_loss", 0.0), ("loss_1pct", 0.01)] {
        let link = LinkConfig {
            loss,
            ..LinkConfig::default()
        };
        group.bench_with_input(BenchmarkId::from_parameter(name), &link, |b, link| {
            b.iter(|| transfer(*link))
        });
    }
    group.finish();
}

criterion_group!(benches, bulk);
criterion_main!(benches);
