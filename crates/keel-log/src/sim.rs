//! A simulated file system for crash and fault tests.
//!
//! [`SimStorage`] keeps every file in memory twice: what the page cache holds (`data`) and what
//! would survive a power cut (`durable`, updated by `sync_data`). Directory entries are durable
//! only after `sync_dir` of their directory. [`SimStorage::power_cut`] throws away everything
//! that was not made durable, except that each file keeps its unsynced changes up to a seeded
//! random byte position — a torn write — so recovery sees what a disk could show after a
//! crash: bytes appended past the end, bytes overwritten inside the file (an append into
//! zeros written ahead, segment.rs "Pre-extension") and a size change (extended or cut) each
//! reach the disk up to that position, in position order.
//! [`SimStorage::fail_next_syncs`] makes `fdatasync` fail, to test sticky fsync errors.
//!
//! It is not a model of any particular file system's ordering quirks beyond those two rules.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::storage::{DirLock, Storage, StorageFile};

/// In-memory storage that can lose unsynced data on command. Cloning shares the same state.
#[derive(Debug, Clone, Default)]
pub struct SimStorage {
    inner: Arc<SimInner>,
}

#[derive(Debug, Default)]
struct SimInner {
    tree: Mutex<SimTree>,
    syncs_to_fail: AtomicUsize,
}

#[derive(Debug, Default)]
struct SimTree {
    dirs: Vec<PathBuf>,
    files: BTreeMap<PathBuf, Arc<SimFile>>,
    durable_files: BTreeMap<PathBuf, Arc<SimFile>>,
}

#[derive(Debug)]
struct SimFile {
    state: Mutex<SimFileState>,
    storage: std::sync::Weak<SimInner>,
}

#[derive(Debug, Default, Clone)]
struct SimFileState {
    data: Vec<u8>,
    durable: Vec<u8>,
}

impl SimStorage {
    /// A new, empty simulated file system.
    pub fn new() -> SimStorage {
        SimStorage::default()
    }

    /// Simulates a power cut: every open handle is cut off, every file keeps its durable bytes
    /// plus a random prefix (chosen by `seed`) of what was written after its last sync, and
    /// files whose directory entry was never synced disappear.
    pub fn power_cut(&self, seed: u64) {
        let mut rng = SplitMix64(seed);
        let mut tree = self.tree();
        let mut survivors = BTreeMap::new();
        for (path, file) in &tree.durable_files {
            let state = file.state.lock().expect("sim file lock").clone();
            let kept = torn(&state.data, &state.durable, &mut rng);
            let fresh = Arc::new(SimFile {
                state: Mutex::new(SimFileState {
                    data: kept.clone(),
                    durable: kept,
                }),
                storage: Arc::downgrade(&self.inner),
            });
            survivors.insert(path.clone(), fresh);
        }
        tree.files = survivors.clone();
        tree.durable_files = survivors;
    }

    /// Makes the next `count` calls to `sync_data` fail with an I/O error.
    pub fn fail_next_syncs(&self, count: usize) {
        self.inner.syncs_to_fail.store(count, Ordering::SeqCst);
    }

    /// The current (page cache) bytes of a file, for tests that inspect or corrupt it.
    pub fn file_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let tree = self.tree();
        tree.files
            .get(path)
            .map(|file| file.state.lock().expect("sim file lock").data.clone())
    }

    /// Replaces a file's bytes, durable and cached alike, as a disk corruption would.
    pub fn overwrite_file(&self, path: &Path, bytes: Vec<u8>) {
        let tree = self.tree();
        if let Some(file) = tree.files.get(path) {
            let mut state = file.state.lock().expect("sim file lock");
            state.durable = bytes.clone();
            state.data = bytes;
        }
    }

    fn tree(&self) -> MutexGuard<'_, SimTree> {
        self.inner.tree.lock().expect("sim tree lock")
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: not found", path.display()),
    )
}

impl Storage for SimStorage {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut tree = self.tree();
        for ancestor in path.ancestors() {
            if !tree.dirs.iter().any(|dir| dir == ancestor) {
                tree.dirs.push(ancestor.to_path_buf());
            }
        }
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let tree = self.tree();
        let child_name = |candidate: &Path| {
            (candidate.parent() == Some(path))
                .then(|| {
                    candidate
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                })
                .flatten()
        };
        let mut names: Vec<String> = tree.files.keys().filter_map(|p| child_name(p)).collect();
        names.extend(tree.dirs.iter().filter_map(|p| child_name(p)));
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let mut tree = self.tree();
        if let Some(file) = tree.files.get(path) {
            return Ok(file.clone());
        }
        if !create {
            return Err(not_found(path));
        }
        let file = Arc::new(SimFile {
            state: Mutex::new(SimFileState::default()),
            storage: Arc::downgrade(&self.inner),
        });
        tree.files.insert(path.to_path_buf(), file.clone());
        Ok(file)
    }

    fn exists(&self, path: &Path) -> bool {
        let tree = self.tree();
        tree.files.contains_key(path) || tree.dirs.iter().any(|dir| dir == path)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.tree()
            .files
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut tree = self.tree();
        tree.files.retain(|p, _| !p.starts_with(path));
        tree.durable_files.retain(|p, _| !p.starts_with(path));
        tree.dirs.retain(|p| !p.starts_with(path));
        Ok(())
    }

    /// Renames a file (durable after `sync_dir`) or a directory (durable at once: the
    /// simulator does not model lost directory renames).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut tree = self.tree();
        if let Some(file) = tree.files.remove(from) {
            tree.files.insert(to.to_path_buf(), file);
            return Ok(());
        }
        if !tree.dirs.iter().any(|dir| dir == from) {
            return Err(not_found(from));
        }
        let moved = |path: &Path| to.join(path.strip_prefix(from).expect("prefix checked"));
        for dir in tree.dirs.iter_mut().filter(|dir| dir.starts_with(from)) {
            *dir = moved(dir);
        }
        let SimTree {
            files,
            durable_files,
            ..
        } = &mut *tree;
        for map in [files, durable_files] {
            let inside: Vec<PathBuf> = map
                .keys()
                .filter(|p| p.starts_with(from))
                .cloned()
                .collect();
            for path in inside {
                let file = map.remove(&path).expect("listed");
                map.insert(moved(&path), file);
            }
        }
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut tree = self.tree();
        let SimTree {
            files,
            durable_files,
            ..
        } = &mut *tree;
        durable_files.retain(|p, _| p.parent() != Some(path) || files.contains_key(p));
        for (p, file) in files.iter() {
            if p.parent() == Some(path) {
                durable_files.insert(p.clone(), file.clone());
            }
        }
        Ok(())
    }

    /// The simulator is one process: tests reopen a log after a power cut while the old
    /// handles still exist, which is exactly what a lock would (rightly) refuse on a disk.
    fn lock_exclusive(&self, _path: &Path) -> io::Result<DirLock> {
        Ok(DirLock::unshared())
    }
}

impl SimFile {
    fn state(&self) -> MutexGuard<'_, SimFileState> {
        self.state.lock().expect("sim file lock")
    }
}

impl StorageFile for SimFile {
    fn read_at(&self, buf: &mut [u8], position: u64) -> io::Result<usize> {
        let state = self.state();
        let start = (position as usize).min(state.data.len());
        let n = buf.len().min(state.data.len() - start);
        buf[..n].copy_from_slice(&state.data[start..start + n]);
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], position: u64) -> io::Result<()> {
        let mut state = self.state();
        let end = position as usize + buf.len();
        if state.data.len() < end {
            state.data.resize(end, 0);
        }
        state.data[position as usize..end].copy_from_slice(buf);
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.state().data.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.state().data.resize(len as usize, 0);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        if let Some(storage) = self.storage.upgrade() {
            let failed = storage
                .syncs_to_fail
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if failed {
                return Err(io::Error::other("simulated fdatasync failure"));
            }
        }
        let mut state = self.state();
        state.durable = state.data.clone();
        Ok(())
    }
}

/// What a power cut leaves of a file whose page cache holds `data` and whose disk holds
/// `durable`: the cached bytes before a random position `cut` (from the first byte that
/// differs to the end of the longer of the two), the durable ones from it on. A file that
/// only grew keeps a random prefix of its new tail, as before overwrites were modelled; a cut
/// past a shortened file's new end leaves it shortened.
fn torn(data: &[u8], durable: &[u8], rng: &mut SplitMix64) -> Vec<u8> {
    if data == durable {
        return durable.to_vec();
    }
    let first_difference = data
        .iter()
        .zip(durable)
        .position(|(a, b)| a != b)
        .unwrap_or(data.len().min(durable.len()));
    let last = data.len().max(durable.len());
    let cut = first_difference + (rng.next() % ((last - first_difference) as u64 + 1)) as usize;
    if cut > data.len() {
        return data.to_vec();
    }
    let mut kept = data[..cut].to_vec();
    if cut < durable.len() {
        kept.extend_from_slice(&durable[cut..]);
    }
    kept
}

/// A tiny deterministic generator so a seed replays the same torn writes.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
