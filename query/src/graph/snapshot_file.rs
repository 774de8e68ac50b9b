//! The service graph's snapshot files: `graph/<generation>.bin`, the graph's state as it
//! stood when segment `<generation>` was sealed.
//!
//! A file is a magic line followed by the state in postcard, a compact binary serde format
//! (varint integers, raw bytes), so that hundreds of thousands of pending spans encode in
//! tens of milliseconds and take tens of bytes each. Files are written to a temporary name,
//! synced and renamed, so a reader sees a whole snapshot or none.
//!
//! Snapshots are a cache: the segments hold every span. A snapshot that cannot be read
//! (torn, from another format, or the JSON snapshots of earlier versions, `<generation>.json`)
//! is not an error; the graph is then rebuilt from the segments.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracegate_storage::StorageError;

/// First bytes of every snapshot file; the digit is the format's version.
const MAGIC: &[u8] = b"tracegate graph snapshot 3\n";
/// Extension of current snapshot files.
const EXTENSION: &str = "bin";
/// Extension of the JSON snapshots of earlier versions, removed like older snapshots.
const LEGACY_EXTENSION: &str = "json";

/// Encodes `state` as the bytes of a snapshot file.
pub(crate) fn encode<T: Serialize>(state: &T) -> Result<Vec<u8>, StorageError> {
    postcard::to_extend(state, MAGIC.to_vec())
        .map_err(|e| StorageError::Corrupt(format!("graph snapshot: cannot encode: {e}")))
}

/// Decodes the bytes of a snapshot file read from `path`.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], path: &Path) -> Result<T, StorageError> {
    let body = bytes.strip_prefix(MAGIC).ok_or_else(|| {
        let what = if bytes.starts_with(&MAGIC[..MAGIC.len() - 2]) {
            "written by another version of tracegate"
        } else {
            "not a snapshot"
        };
        StorageError::Corrupt(format!("graph snapshot {}: {what}", path.display()))
    })?;
    postcard::from_bytes(body)
        .map_err(|e| StorageError::Corrupt(format!("graph snapshot {}: {e}", path.display())))
}

/// The path of the snapshot of `generation`.
pub(crate) fn path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("{generation:010}.{EXTENSION}"))
}

/// The generation a file name stands for, and whether it is a current snapshot.
fn parse_name(name: &str) -> Option<(u64, bool)> {
    let (stem, extension) = name.split_once('.')?;
    let current = match extension {
        EXTENSION => true,
        LEGACY_EXTENSION => false,
        _ => return None,
    };
    Some((stem.parse().ok()?, current))
}

/// The newest current snapshot in `dir`, as `(generation, path)`, and whether an older
/// format's snapshot is there too.
pub(crate) fn newest(dir: &Path) -> Result<(Option<(u64, PathBuf)>, bool), StorageError> {
    let mut newest: Option<(u64, PathBuf)> = None;
    let mut legacy = false;
    for entry in std::fs::read_dir(dir).map_err(|e| StorageError::io("list", dir, e))? {
        let entry = entry.map_err(|e| StorageError::io("list", dir, e))?;
        let name = entry.file_name();
        match name.to_str().and_then(parse_name) {
            Some((generation, true)) if newest.as_ref().is_none_or(|(g, _)| generation > *g) => {
                newest = Some((generation, entry.path()));
            }
            Some((_, true)) | None => {}
            Some((_, false)) => legacy = true,
        }
    }
    Ok((newest, legacy))
}

/// Writes `bytes` durably as the snapshot of `generation`, then removes every older
/// snapshot, of either format.
pub(crate) fn write(dir: &Path, generation: u64, bytes: &[u8]) -> Result<(), StorageError> {
    let path = path(dir, generation);
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut file, bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| StorageError::io("write", &path, e))?;
    for entry in std::fs::read_dir(dir).map_err(|e| StorageError::io("list", dir, e))? {
        let Ok(entry) = entry else { continue };
        let older = entry
            .file_name()
            .to_str()
            .and_then(parse_name)
            .is_some_and(|(g, current)| g < generation || !current);
        if older {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_foreign_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let state: Vec<(u64, String)> = vec![(1, "cart".into()), (u64::MAX, String::new())];
        write(dir.path(), 3, &encode(&state).unwrap()).unwrap();
        let (newest, legacy) = newest(dir.path()).unwrap();
        let (generation, file) = newest.unwrap();
        assert_eq!((generation, legacy), (3, false));
        let bytes = std::fs::read(&file).unwrap();
        assert_eq!(decode::<Vec<(u64, String)>>(&bytes, &file).unwrap(), state);

        let error = decode::<Vec<(u64, String)>>(b"{\"endpoints\":[]}", &file).unwrap_err();
        assert!(error.to_string().contains("not a snapshot"), "{error}");
        let torn = &bytes[..bytes.len() - 1];
        assert!(decode::<Vec<(u64, String)>>(torn, &file).is_err());
    }

    #[test]
    fn writing_removes_older_and_legacy_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("0000000002.json"), b"{}").unwrap();
        assert_eq!(
            newest(dir.path()).unwrap(),
            (None, true),
            "legacy file seen"
        );
        write(dir.path(), 4, b"old").unwrap();
        std::fs::write(dir.path().join("0000000005.json"), b"{}").unwrap();
        write(dir.path(), 9, b"new").unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, vec!["0000000009.bin"]);
    }
}
