//! The tap journal: entries the gate let through on its own, kept until a validator
//! has answered their forwarded scan.
//!
//! One JSON object per line, appended and `fsync`ed before the gate opens, so a
//! power cut loses no entry the passenger was let through for:
//!
//! ```text
//! {"op":"tap","scan":{"v":1,"id":"…","pass":"KP2.…","ts":…},"gate":"metro/central/g1","at":…,"ticket":7,"snapshot":…}
//! {"op":"ack","id":"…","open":true,"at":…}
//! ```
//!
//! A tap is pending until an `ack` with its scan id follows. When none is pending the
//! file is truncated; on open it is rewritten with the pending taps only. A torn last
//! line (power lost mid-write, so before the `fsync` the gate waits for) is dropped.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use kippu_domain::{DenyReason, ScanRequest, VerdictMessage};
use serde::{Deserialize, Serialize};

/// An entry the gate allowed offline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournaledTap {
    /// The scan as the gate would have published it; forwarded verbatim, so the
    /// validator sees the same scan id however often it is re-sent.
    pub scan: ScanRequest,
    /// `operator/station/gate`.
    pub gate: String,
    /// When the gate opened (unix seconds, gate clock).
    pub at: u64,
    /// The ticket that entered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<u64>,
    /// `issued_at` of the snapshot that decided it.
    pub snapshot: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Record {
    Tap(JournaledTap),
    Ack {
        id: String,
        open: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<DenyReason>,
        at: u64,
    },
}

/// What [`Journal::read`] found in a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalContents {
    /// Taps not yet acknowledged by a validator, oldest first.
    pub pending: Vec<JournaledTap>,
    /// Taps acknowledged (still in the file until it is compacted).
    pub acked: usize,
    /// Lines that could not be read (a torn last line after a power cut).
    pub unreadable: usize,
}

/// The append-only journal file of one gate.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    pending: Vec<JournaledTap>,
}

impl Journal {
    /// Opens (creating it and its directory if needed) the journal at `path`, keeping
    /// the pending taps and compacting away acknowledged ones.
    pub fn open(path: &Path) -> io::Result<Self> {
        let dir = parent(path);
        std::fs::create_dir_all(&dir)?;
        let contents = Self::read(path)?;
        if contents.unreadable > 0 {
            tracing::warn!(path = %path.display(), lines = contents.unreadable, "unreadable journal lines dropped");
        }
        // Rewrite with the pending taps only: drops acks and a torn tail, which an
        // append would otherwise glue the next record onto.
        let tmp = path.with_extension("jsonl.tmp");
        {
            let mut f = File::create(&tmp)?;
            for tap in &contents.pending {
                f.write_all(&line(&Record::Tap(tap.clone()))?)?;
            }
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        sync_dir(&dir)?;
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(Self { path: path.to_owned(), file, pending: contents.pending })
    }

    /// Reads a journal without opening it for writing (for display). A missing file is empty.
    pub fn read(path: &Path) -> io::Result<JournalContents> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(JournalContents::default()),
            Err(e) => return Err(e),
        };
        let mut out = JournalContents::default();
        let mut acked = HashSet::new();
        for raw in text.split(|b| *b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)) {
            match serde_json::from_slice::<Record>(raw) {
                Ok(Record::Tap(t)) => out.pending.push(t),
                Ok(Record::Ack { id, .. }) => {
                    acked.insert(id);
                }
                Err(_) => out.unreadable += 1,
            }
        }
        let before = out.pending.len();
        out.pending.retain(|t| !acked.contains(&t.scan.id));
        out.acked = before - out.pending.len();
        Ok(out)
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Taps awaiting a validator's answer, oldest first.
    pub fn pending(&self) -> &[JournaledTap] {
        &self.pending
    }

    /// Appends a tap; returns once it is on disk.
    pub fn append(&mut self, tap: JournaledTap) -> io::Result<()> {
        self.write(&Record::Tap(tap.clone()))?;
        self.pending.push(tap);
        Ok(())
    }

    /// Records the validator's answer to a forwarded tap, removing it from the pending
    /// ones. Returns whether it was pending. Truncates the file once nothing is.
    pub fn ack(&mut self, verdict: &VerdictMessage, at: u64) -> io::Result<bool> {
        if !self.pending.iter().any(|t| t.scan.id == verdict.id) {
            return Ok(false);
        }
        self.write(&Record::Ack { id: verdict.id.clone(), open: verdict.open, reason: verdict.reason, at })?;
        self.pending.retain(|t| t.scan.id != verdict.id);
        if self.pending.is_empty() {
            self.file.set_len(0)?;
            self.file.sync_all()?;
        }
        Ok(true)
    }

    fn write(&mut self, record: &Record) -> io::Result<()> {
        // One write of a whole line on an append-only file, then fsync: the record is
        // either fully there or a torn tail that `open` drops.
        self.file.write_all(&line(record)?)?;
        self.file.sync_data()
    }
}

fn line(record: &Record) -> io::Result<Vec<u8>> {
    let mut l = serde_json::to_vec(record).map_err(io::Error::other)?;
    l.push(b'\n');
    Ok(l)
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Makes a rename or a new file in `dir` durable (a no-op where directories cannot be opened).
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Writes `bytes` to `path` atomically and durably (temp file, fsync, rename, fsync dir).
pub(crate) fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = parent(path);
    std::fs::create_dir_all(&dir)?;
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(&dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kippu-journal-{name}-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn tap(id: &str, at: u64) -> JournaledTap {
        JournaledTap {
            scan: ScanRequest { v: 1, id: id.into(), pass: "KP1.x".into(), ts: at * 1000, trip: None },
            gate: "metro/central/g1".into(),
            at,
            ticket: Some(7),
            snapshot: 1,
        }
    }

    #[test]
    fn taps_survive_reopen_until_acked() {
        let dir = temp_dir("reopen");
        let path = dir.join("j.jsonl");
        let mut j = Journal::open(&path).unwrap();
        j.append(tap("a", 10)).unwrap();
        j.append(tap("b", 11)).unwrap();
        assert!(j.ack(&VerdictMessage::open("a", 7, None), 20).unwrap());
        assert!(!j.ack(&VerdictMessage::open("zz", 7, None), 20).unwrap(), "not pending");
        drop(j);
        let read = Journal::read(&path).unwrap();
        assert_eq!((read.pending, read.acked, read.unreadable), (vec![tap("b", 11)], 1, 0));
        // Reopen compacts: only the pending tap is left in the file.
        let mut j = Journal::open(&path).unwrap();
        assert_eq!(j.pending(), [tap("b", 11)]);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
        assert!(j.ack(&VerdictMessage::deny("b", DenyReason::Expired, Some(7)), 21).unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "truncated when nothing is pending");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_torn_tail_is_dropped_and_appends_stay_readable() {
        let dir = temp_dir("torn");
        let path = dir.join("j.jsonl");
        let mut j = Journal::open(&path).unwrap();
        j.append(tap("a", 10)).unwrap();
        drop(j);
        // Power lost halfway through writing the next line.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"op":"tap","scan":{"v":1,"id":"b""#).unwrap();
        drop(f);
        assert_eq!(Journal::read(&path).unwrap().unreadable, 1);
        let mut j = Journal::open(&path).unwrap();
        assert_eq!(j.pending(), [tap("a", 10)]);
        j.append(tap("c", 12)).unwrap();
        drop(j);
        let read = Journal::read(&path).unwrap();
        assert_eq!((read.pending, read.unreadable), (vec![tap("a", 10), tap("c", 12)], 0));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
