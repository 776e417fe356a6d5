//! `serve --memory-limit`: the bytes of connection buffers all workers may hold together, by
//! default what Linux would let its own TCP hold on this machine, divided among the workers
//! (each engine has its own budget, `Config::memory_limit`).

use anyhow::{Context, Result, bail};

/// The least budget a worker gets: a few connections' worth of full buffers.
const MIN_PER_WORKER: u64 = 1 << 20;

/// Linux's default `tcp_mem` high mark for a machine whose /proc/meminfo is `meminfo`:
/// `tcp_init_mem` takes `nr_free_buffer_pages() / 16` as the pressure mark and sets the high
/// mark to 3/4 of it times 2, that is 3/32 (9.4 %) of memory. MemTotal stands in for the free
/// buffer pages counted at boot.
fn linux_tcp_mem_high(meminfo: &str) -> Option<u64> {
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024 / 32 * 3)
}

/// The default total: Linux's `tcp_mem` high mark for this machine.
pub(crate) fn machine_default() -> Result<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
    linux_tcp_mem_high(&meminfo)
        .context("/proc/meminfo has no MemTotal line; give the budget with --memory-limit SIZE")
}

/// Each of `workers` engines' share of `total` bytes.
pub(crate) fn per_worker(total: u64, workers: u32) -> Result<usize> {
    let share = total / u64::from(workers.max(1));
    if share < MIN_PER_WORKER {
        bail!(
            "--memory-limit {total} leaves each of the {workers} worker(s) {share} B; give at \
             least 1 MiB per worker (e.g. --memory-limit {}MiB)",
            workers.max(1)
        );
    }
    Ok(usize::try_from(share).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_linux_tcp_mem_high_three_thirty_seconds_of_memory() {
        let meminfo = "MemTotal:       24683772 kB\nMemFree:        18916000 kB\n";
        assert_eq!(
            linux_tcp_mem_high(meminfo),
            Some(24_683_772 * 1024 / 32 * 3)
        );
        assert_eq!(linux_tcp_mem_high("MemFree: 1 kB\n"), None);
        assert_eq!(linux_tcp_mem_high("MemTotal: lots\n"), None);
    }

    #[test]
    fn the_total_is_shared_among_workers_and_a_share_below_1_mib_is_refused() {
        assert_eq!(per_worker(64 << 20, 2).unwrap(), 32 << 20);
        let err = per_worker(1 << 20, 4).unwrap_err().to_string();
        assert!(
            err.contains("4 worker(s) 262144 B") && err.contains("4MiB"),
            "{err}"
        );
    }
}
