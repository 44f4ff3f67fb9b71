//! The process's own memory, against the most it can get before an allocation fails.
//!
//! Each analyst query has a pool, but not every allocation goes through a pool (a
//! projection's output, a function's answer, the planner). When the process runs out,
//! Rust aborts it, and the API and web page go down with the query. The sandbox watches
//! the process against a ceiling below that point and stops its queries first.

use std::path::Path;

/// Where the process must stay: below the memory it may have (the machine's, or its
/// cgroup's) and below its address-space limit (`ulimit -v`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryCeiling {
    /// Resident bytes.
    pub resident: u64,
    /// Virtual bytes; `None` when the address space is not limited.
    pub address_space: Option<u64>,
}

/// Share of each limit the process may reach before queries are stopped: the margin
/// covers what grows between two looks and what the rest of the server needs.
const SHARE: f64 = 0.8;

impl MemoryCeiling {
    /// 80 % of the smaller of the machine's memory and the cgroup's limit, and 80 % of
    /// the address-space limit; `None` when neither can be read (not Linux).
    pub fn from_machine() -> Option<Self> {
        let machine = mem_total().into_iter().chain(cgroup_limit()).min()?;
        Some(Self {
            resident: share(machine),
            address_space: address_space_limit().map(share),
        })
    }

    /// A ceiling of `bytes` resident, the address-space limit taken from the machine.
    pub fn resident(bytes: u64) -> Self {
        Self {
            resident: bytes,
            address_space: address_space_limit().map(share),
        }
    }

    /// When the process is over this ceiling: the bytes it holds and the limit it
    /// passed (resident, or address space).
    pub fn exceeded(&self) -> Option<(u64, u64)> {
        let usage = Usage::now()?;
        match self.address_space {
            Some(max) if usage.virtual_ > max => Some((usage.virtual_, max)),
            _ => (usage.resident > self.resident).then_some((usage.resident, self.resident)),
        }
    }
}

fn share(bytes: u64) -> u64 {
    (bytes as f64 * SHARE) as u64
}

/// What the process holds now.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub resident: u64,
    pub virtual_: u64,
}

impl Usage {
    /// From `/proc/self/statm` (pages); `None` where there is none.
    pub fn now() -> Option<Self> {
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let mut pages = statm.split_whitespace().map(|v| v.parse::<u64>().ok());
        let virtual_pages = pages.next()??;
        let resident_pages = pages.next()??;
        let page = 4096;
        Some(Self {
            resident: resident_pages * page,
            virtual_: virtual_pages * page,
        })
    }
}

fn mem_total() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// cgroup v2's `memory.max`, or v1's `memory.limit_in_bytes`; `None` when unlimited.
fn cgroup_limit() -> Option<u64> {
    [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .into_iter()
    .filter_map(|p| std::fs::read_to_string(Path::new(p)).ok())
    .find_map(|v| v.trim().parse().ok())
}

/// The soft `ulimit -v`, from `/proc/self/limits`; `None` when unlimited.
fn address_space_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max address space"))?;
    line.trim_start_matches("Max address space")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_has_a_ceiling_and_this_process_is_under_it() {
        let ceiling = MemoryCeiling::from_machine().expect("Linux has /proc/meminfo");
        assert!(ceiling.resident > 100 * 1024 * 1024, "{ceiling:?}");
        assert!(ceiling.exceeded().is_none(), "{ceiling:?}");
        let usage = Usage::now().unwrap();
        assert!(usage.resident > 0 && usage.virtual_ >= usage.resident);
        // A ceiling below what the process already holds is exceeded.
        assert!(MemoryCeiling::resident(1024).exceeded().is_some());
    }
}
