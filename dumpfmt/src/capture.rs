//! How an image's state was captured (format 1.4, [`crate::Minor4`]'s
//! `capture`): with the process stopped for the whole dump, or from a
//! copy-on-write snapshot taken while it was stopped and written while it
//! ran on (`MIGRATE_SNAPSHOT`, issue 11). Either way the image is of one
//! instant; the record says which way it was taken and how long the
//! process was stopped before the snapshot was taken, so that tools and
//! benchmarks can read the pause from the image itself.

use serde::{Deserialize, Serialize};

/// Which way the dump froze the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum CaptureMode {
    /// Every thread stayed stopped until the image was complete. An image
    /// without the record (no 1.4 field) reads as this.
    #[default]
    Stopped,
    /// The threads were stopped while the state was captured and a
    /// copy-on-write snapshot taken; a helper process wrote the memory of
    /// that snapshot while the process ran on.
    Snapshot,
}

/// The capture record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Capture {
    pub mode: CaptureMode,
    /// `Snapshot`: nanoseconds from the dump signal until the snapshot
    /// was taken (the process's pause, but for the release of its
    /// threads). `Stopped`: 0 (the pause is the whole dump, which is not
    /// over when the metadata is written; the status file has it).
    pub pause_ns: u64,
}

/// Longest pause a snapshot can report: past this the clock is wrong.
pub const MAX_PAUSE_NS: u64 = 24 * 3600 * 1_000_000_000;

impl Capture {
    /// Refuses a record no dump writes.
    pub fn check(&self) -> Result<(), alloc::string::String> {
        match self.mode {
            CaptureMode::Stopped if self.pause_ns != 0 => Err(alloc::format!(
                "capture: a stopped dump records a pause ({} ns)",
                self.pause_ns
            )),
            CaptureMode::Snapshot if self.pause_ns == 0 || self.pause_ns > MAX_PAUSE_NS => {
                Err(alloc::format!(
                    "capture: a snapshot's pause of {} ns is out of range",
                    self.pause_ns
                ))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks() {
        assert!(Capture::default().check().is_ok());
        let snap = |pause_ns| Capture {
            mode: CaptureMode::Snapshot,
            pause_ns,
        };
        assert!(snap(1_000_000).check().is_ok());
        assert!(snap(0).check().is_err());
        assert!(snap(MAX_PAUSE_NS + 1).check().is_err());
        let stopped = Capture {
            mode: CaptureMode::Stopped,
            pause_ns: 5,
        };
        assert!(stopped.check().is_err());
    }

    #[test]
    fn round_trips() {
        let c = Capture {
            mode: CaptureMode::Snapshot,
            pause_ns: 1234,
        };
        let mut buf = [0u8; 32];
        let n = postcard::to_slice(&c, &mut buf).unwrap().len();
        assert_eq!(postcard::from_bytes::<Capture>(&buf[..n]).unwrap(), c);
    }
}
