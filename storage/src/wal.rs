//! The write-ahead log: numbered files of checksummed records.
//!
//! ```text
//! wal/00000007.wal = "TGWAL001" record*
//! record           = len:u32le crc32:u32le payload[len]
//! ```
//!
//! A payload is one accepted OTLP export request in protobuf. Replay reads records
//! until the first one that is short or fails its checksum, and truncates the file
//! there: that tail was never acknowledged, because an acknowledgement waits for the
//! sync that covers the whole record.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::StorageError;

const MAGIC: &[u8; 8] = b"TGWAL001";
const HEADER_BYTES: u64 = 8;
/// Refuse records larger than this on replay: a length this big is a torn header.
const MAX_RECORD_BYTES: u32 = 1 << 30;

/// The path of WAL file number `generation` in `dir`.
pub(crate) fn wal_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("{generation:010}.wal"))
}

/// The generations of the WAL files in `dir`, ascending.
///
/// # Errors
/// When the directory cannot be read.
pub fn list_generations(dir: &Path) -> Result<Vec<u64>, StorageError> {
    let mut generations = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| StorageError::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io("list", dir, e))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".wal")) else {
            continue;
        };
        if let Ok(generation) = stem.parse() {
            generations.push(generation);
        }
    }
    generations.sort_unstable();
    Ok(generations)
}

/// Makes a directory entry change (create, rename, delete) durable.
///
/// # Errors
/// When the directory cannot be opened or synced.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io("sync directory", dir, e))
}

/// An open WAL file being appended to.
pub struct WalFile {
    path: PathBuf,
    file: File,
    bytes: u64,
    generation: u64,
}

impl WalFile {
    /// Creates WAL file `generation` in `dir` and makes its creation durable.
    ///
    /// # Errors
    /// When the file cannot be created or synced.
    pub fn create(dir: &Path, generation: u64) -> Result<Self, StorageError> {
        let path = wal_path(dir, generation);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(|e| StorageError::io("create", &path, e))?;
        file.write_all(MAGIC)
            .map_err(|e| StorageError::io("write", &path, e))?;
        file.sync_all()
            .map_err(|e| StorageError::io("sync", &path, e))?;
        sync_dir(dir)?;
        Ok(Self {
            path,
            file,
            bytes: HEADER_BYTES,
            generation,
        })
    }

    /// The file's generation number.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Bytes written so far, header included.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Appends one record (not yet durable: call [`WalFile::sync`]).
    ///
    /// # Errors
    /// When the write fails.
    pub fn append(&mut self, payload: &[u8]) -> Result<(), StorageError> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|len| *len <= MAX_RECORD_BYTES)
            .ok_or_else(|| StorageError::Overloaded("record larger than 1 GiB".to_string()))?;
        let mut header = [0u8; 8];
        header[..4].copy_from_slice(&len.to_le_bytes());
        header[4..].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
        self.file
            .write_all(&header)
            .and_then(|()| self.file.write_all(payload))
            .map_err(|e| StorageError::io("write", &self.path, e))?;
        self.bytes += 8 + u64::from(len);
        Ok(())
    }

    /// Makes every appended record durable.
    ///
    /// # Errors
    /// When the sync fails; the records since the last sync must then be treated as lost.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.file
            .sync_data()
            .map_err(|e| StorageError::io("sync", &self.path, e))
    }
}

/// What replaying one WAL file found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayedFile {
    /// Whole records read.
    pub num_records: u64,
    /// Bytes cut off a torn tail.
    pub truncated_bytes: u64,
}

/// Reads every whole record of WAL file `path`, handing each payload to `visit`, and
/// truncates a torn tail.
///
/// # Errors
/// When the file cannot be read or truncated, or `visit` fails.
pub fn replay_file(
    path: &Path,
    mut visit: impl FnMut(&[u8]) -> Result<(), StorageError>,
) -> Result<ReplayedFile, StorageError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| StorageError::io("open", path, e))?;
    let file_bytes = file
        .metadata()
        .map_err(|e| StorageError::io("stat", path, e))?
        .len();
    let mut reader = BufReader::with_capacity(1 << 20, &file);
    let mut result = ReplayedFile::default();

    let mut magic = [0u8; 8];
    let good_header = reader.read_exact(&mut magic).is_ok() && &magic == MAGIC;
    let mut valid_bytes = if good_header { HEADER_BYTES } else { 0 };
    let mut payload = Vec::new();
    if good_header {
        loop {
            let mut header = [0u8; 8];
            if reader.read_exact(&mut header).is_err() {
                break;
            }
            let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
            let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
            if len > MAX_RECORD_BYTES {
                break;
            }
            payload.resize(len as usize, 0);
            if reader.read_exact(&mut payload).is_err() || crc32fast::hash(&payload) != crc {
                break;
            }
            visit(&payload)?;
            result.num_records += 1;
            valid_bytes += 8 + u64::from(len);
        }
    }

    if valid_bytes < file_bytes {
        result.truncated_bytes = file_bytes - valid_bytes;
        drop(reader);
        let mut file = file;
        if !good_header {
            file.set_len(0)
                .map_err(|e| StorageError::io("truncate", path, e))?;
            file.seek(SeekFrom::Start(0))
                .map_err(|e| StorageError::io("seek", path, e))?;
            file.write_all(MAGIC)
                .map_err(|e| StorageError::io("write", path, e))?;
        } else {
            file.set_len(valid_bytes)
                .map_err(|e| StorageError::io("truncate", path, e))?;
        }
        file.sync_all()
            .map_err(|e| StorageError::io("sync", path, e))?;
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(path: &Path) -> Vec<Vec<u8>> {
        let mut seen = Vec::new();
        replay_file(path, |p| {
            seen.push(p.to_vec());
            Ok(())
        })
        .unwrap();
        seen
    }

    #[test]
    fn records_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = WalFile::create(dir.path(), 1).unwrap();
        wal.append(b"first").unwrap();
        wal.append(b"").unwrap();
        wal.append(&[7u8; 100_000]).unwrap();
        wal.sync().unwrap();
        let seen = records(&wal_path(dir.path(), 1));
        assert_eq!(
            seen,
            vec![b"first".to_vec(), Vec::new(), vec![7u8; 100_000]]
        );
    }

    #[test]
    fn torn_tail_is_truncated_at_every_cut_point() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = WalFile::create(dir.path(), 1).unwrap();
        wal.append(b"kept record").unwrap();
        let kept_bytes = wal.bytes();
        wal.append(b"torn record").unwrap();
        wal.sync().unwrap();
        let full = fs::read(wal_path(dir.path(), 1)).unwrap();

        for cut in kept_bytes as usize..full.len() {
            let path = wal_path(dir.path(), 2);
            fs::write(&path, &full[..cut]).unwrap();
            let mut seen = Vec::new();
            let replayed = replay_file(&path, |p| {
                seen.push(p.to_vec());
                Ok(())
            })
            .unwrap();
            assert_eq!(seen, vec![b"kept record".to_vec()], "cut at {cut}");
            assert_eq!(replayed.truncated_bytes, (cut as u64) - kept_bytes);
            assert_eq!(fs::metadata(&path).unwrap().len(), kept_bytes);
        }
    }

    #[test]
    fn corrupt_checksum_stops_replay() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = WalFile::create(dir.path(), 3).unwrap();
        wal.append(b"good").unwrap();
        wal.append(b"flipped").unwrap();
        wal.sync().unwrap();
        let path = wal_path(dir.path(), 3);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        assert_eq!(records(&path), vec![b"good".to_vec()]);
        assert_eq!(list_generations(dir.path()).unwrap(), vec![3]);
    }
}
