//! Bytes a benchmark wrote to the block device holding its data directory, from
//! `/proc/diskstats` (Linux): what reached the disk, WAL, SST files and
//! everything else on that device included, so a quiet machine gives the cleanest
//! figure.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The sectors the data directory's device had written when measuring started.
#[derive(Debug, Clone)]
pub struct DiskWrites {
    /// The device's major and minor numbers.
    device: (u64, u64),
    /// Sectors written (always 512 bytes in `/proc/diskstats`) at the start.
    sectors: u64,
}

impl DiskWrites {
    /// Starts measuring the device that holds `dir` (or will: the nearest
    /// existing ancestor's); `None` where `/proc/diskstats`
    /// cannot be read or does not list it (not Linux, an overlay or tmpfs).
    pub fn start(dir: &Path) -> Option<Self> {
        // A directory not created yet will be on its nearest existing ancestor's
        // device.
        let existing = dir.ancestors().find(|p| p.exists())?;
        let dev = std::fs::metadata(existing).ok()?.dev();
        let device = (major(dev), minor(dev));
        Some(Self {
            device,
            sectors: sectors_written(device)?,
        })
    }

    /// Bytes written to the device since [`DiskWrites::start`].
    pub fn bytes_since(&self) -> Option<u64> {
        let now = sectors_written(self.device)?;
        Some(now.saturating_sub(self.sectors) * 512)
    }
}

/// glibc's `gnu_dev_major`.
fn major(dev: u64) -> u64 {
    ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff)
}

/// glibc's `gnu_dev_minor`.
fn minor(dev: u64) -> u64 {
    (dev & 0xff) | ((dev >> 12) & !0xff)
}

/// Field 10 of the device's line (1-based, after major, minor and name: sectors
/// written), per the kernel's Documentation/admin-guide/iostats.rst.
fn sectors_written(device: (u64, u64)) -> Option<u64> {
    let stats = std::fs::read_to_string("/proc/diskstats").ok()?;
    stats.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (maj, min) = (f.first()?.parse().ok()?, f.get(1)?.parse().ok()?);
        if (maj, min) == device {
            f.get(9)?.parse().ok()
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_to_the_temp_dir_shows_on_its_device_where_the_kernel_lists_it() {
        let dir = tempfile::tempdir().unwrap();
        let Some(before) = DiskWrites::start(dir.path()) else {
            // No diskstats line for this filesystem (tmpfs, overlay): nothing to check.
            return;
        };
        let data = vec![7u8; 4 << 20];
        let path = dir.path().join("f");
        std::fs::write(&path, &data).unwrap();
        std::fs::File::open(&path).unwrap().sync_all().unwrap();
        assert!(before.bytes_since().unwrap() >= 4 << 20);
    }
}
