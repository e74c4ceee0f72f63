//! The log's open files, bounded: a [`Storage`] wrapper that closes the least recently used
//! files once more than a budget are open, and opens them again on their next use.
//!
//! Kafka keeps the three files of every segment open for the broker's lifetime, which is why
//! its operators raise `ulimit -n` into the hundreds of thousands. Here a partition nobody
//! reads or writes costs no descriptor: every file the log opens goes through
//! [`BoundedStorage`], and the descriptors above [`OpenFiles::max`] are closed, oldest use
//! first, in batches of an eighth of the budget (one scan of the files closes many, so a
//! workload that cycles through more files than the budget pays a scan every budget/8 opens).
//!
//! What closing must not change:
//! - **Data.** Bytes written through a descriptor that is then closed stay in the page cache,
//!   and an `fdatasync` through a later descriptor of the same file writes them back: the
//!   kernel syncs the file, not the descriptor, and (since Linux 4.16) reports a writeback
//!   error nobody has seen to the next fsync through any descriptor. A partition's sticky
//!   fsync failure is kept in the partition, never in a descriptor, so closing cannot clear it.
//! - **Identity.** A file is reopened by its path, so the paths are kept true: a renamed file
//!   follows its new path; a file about to be replaced by a rename (compaction's cleaned
//!   segment) is opened and pinned first, and one being removed (retention, topic deletion)
//!   is pinned if open, so a reader holding an older list of segments reads the bytes it
//!   indexed, never another file's. A removed file that was closed is never reopened: its use
//!   fails with `NotFound` naming it. Reopens, renames and removals exclude each other
//!   (`paths`), so no reopen sees a half-done rename.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};

use crate::limits::{OPEN_FILES_MAX_UNLIMITED, OPEN_FILES_RESERVE};
use crate::storage::{DirLock, Storage, StorageFile};

/// The default budget of open log files: the process's soft `RLIMIT_NOFILE` less a reserve
/// for connections and everything else the process opens ([`OPEN_FILES_RESERVE`], but never
/// more than half the limit), or [`OPEN_FILES_MAX_UNLIMITED`] when there is no limit.
pub fn open_files_max_default() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    match limit.and_then(|soft| usize::try_from(soft).ok()) {
        Some(soft) => (soft / 2).max(soft.saturating_sub(OPEN_FILES_RESERVE)),
        None => OPEN_FILES_MAX_UNLIMITED,
    }
}

/// The log's open files now and since it was opened, for a metrics endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenFiles {
    /// Segment, index and other log files open now (pinned ones included).
    pub open: usize,
    /// The budget ([`crate::LogOptions::open_files_max`]): above it the least recently used
    /// files are closed.
    pub max: usize,
    /// Files closed to stay within the budget.
    pub closes: u64,
    /// Files opened again on their first use after such a close.
    pub reopens: u64,
}

/// A [`Storage`] whose files close when idle and the budget is exceeded; see the module docs.
#[derive(Debug)]
pub(crate) struct BoundedStorage {
    inner: Arc<dyn Storage>,
    files: Arc<Files>,
}

/// What every file of one [`BoundedStorage`] shares.
#[derive(Debug)]
struct Files {
    max: usize,
    /// Every live file, open or closed, so renames and removals find theirs.
    registry: Mutex<Registry>,
    /// Held for reading by a reopen, for writing by a rename or removal.
    paths: RwLock<()>,
    /// Held while closing, so two threads over budget do not both close a batch.
    closing: Mutex<()>,
    /// A logical clock: each use of a file takes the next tick.
    ticks: AtomicU64,
    open: AtomicUsize,
    closes: AtomicU64,
    reopens: AtomicU64,
}

#[derive(Debug, Default)]
struct Registry {
    files: Vec<Weak<LazyFile>>,
    /// Length after the last pruning of dropped files; pruned again once it doubles.
    pruned_len: usize,
}

#[derive(Debug)]
struct LazyFile {
    storage: Arc<dyn Storage>,
    files: Arc<Files>,
    path: Mutex<PathBuf>,
    handle: Mutex<Option<Arc<dyn StorageFile>>>,
    last_used: AtomicU64,
    /// Its path was removed or replaced while it was open: the descriptor is the only way
    /// left to its bytes, so it is never closed.
    pinned: AtomicBool,
    /// Its path was removed while it was closed: it is never reopened.
    removed: AtomicBool,
}

impl BoundedStorage {
    /// Wraps `inner`, keeping at most `max` of its files open (at least one).
    pub(crate) fn new(inner: Arc<dyn Storage>, max: usize) -> BoundedStorage {
        BoundedStorage {
            inner,
            files: Arc::new(Files {
                max: max.max(1),
                registry: Mutex::new(Registry::default()),
                paths: RwLock::new(()),
                closing: Mutex::new(()),
                ticks: AtomicU64::new(0),
                open: AtomicUsize::new(0),
                closes: AtomicU64::new(0),
                reopens: AtomicU64::new(0),
            }),
        }
    }

    pub(crate) fn open_files(&self) -> OpenFiles {
        OpenFiles {
            open: self.files.open.load(Ordering::Relaxed),
            max: self.files.max,
            closes: self.files.closes.load(Ordering::Relaxed),
            reopens: self.files.reopens.load(Ordering::Relaxed),
        }
    }

    /// Pins the open files at or under `path`, which is about to disappear, and marks the
    /// closed ones removed. With `keep_replaced`, a closed file exactly at `path` is opened
    /// and pinned instead: a rename over it replaces its bytes, which a reader may still need.
    fn retire(&self, path: &Path, keep_replaced: bool) -> io::Result<()> {
        for file in self.files.live() {
            let file_path = file.path().clone();
            if !file_path.starts_with(path) {
                continue;
            }
            let mut handle = file.handle();
            if handle.is_none() && keep_replaced && file_path == path {
                *handle = Some(self.inner.open(&file_path, false)?);
                self.files.open.fetch_add(1, Ordering::Relaxed);
                self.files.reopens.fetch_add(1, Ordering::Relaxed);
            }
            match *handle {
                Some(_) => file.pinned.store(true, Ordering::Relaxed),
                None => file.removed.store(true, Ordering::Relaxed),
            }
        }
        Ok(())
    }
}

impl Storage for BoundedStorage {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let file = {
            let _paths = self.files.read_paths();
            let handle = self.inner.open(path, create)?;
            let file = Arc::new(LazyFile {
                storage: self.inner.clone(),
                files: self.files.clone(),
                path: Mutex::new(path.to_path_buf()),
                handle: Mutex::new(Some(handle)),
                last_used: AtomicU64::new(self.files.tick()),
                pinned: AtomicBool::new(false),
                removed: AtomicBool::new(false),
            });
            self.files.register(&file);
            file
        };
        self.files.open.fetch_add(1, Ordering::Relaxed);
        self.files.close_over_budget();
        Ok(file)
    }

    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let _paths = self.files.write_paths();
        self.retire(path, false)?;
        self.inner.remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let _paths = self.files.write_paths();
        self.retire(path, false)?;
        self.inner.remove_dir_all(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let _paths = self.files.write_paths();
        self.retire(to, true)?;
        self.inner.rename(from, to)?;
        for file in self.files.live() {
            let mut path = file.path();
            if let Ok(rest) = path.strip_prefix(from) {
                *path = if rest.as_os_str().is_empty() {
                    to.to_path_buf()
                } else {
                    to.join(rest)
                };
            }
        }
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.sync_dir(path)
    }

    fn lock_exclusive(&self, path: &Path) -> io::Result<DirLock> {
        self.inner.lock_exclusive(path)
    }
}

impl Files {
    fn tick(&self) -> u64 {
        self.ticks.fetch_add(1, Ordering::Relaxed)
    }

    fn read_paths(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.paths.read().expect("paths lock poisoned")
    }

    fn write_paths(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.paths.write().expect("paths lock poisoned")
    }

    fn register(&self, file: &Arc<LazyFile>) {
        let mut registry = self.registry.lock().expect("registry lock poisoned");
        registry.files.push(Arc::downgrade(file));
        if registry.files.len() >= 2 * registry.pruned_len.max(64) {
            registry.files.retain(|file| file.strong_count() > 0);
            registry.pruned_len = registry.files.len();
        }
    }

    /// Every file still in use. The caller drops them outside the registry lock, so a last
    /// reference dropped here never runs a file's `Drop` under it.
    fn live(&self) -> Vec<Arc<LazyFile>> {
        let registry = self.registry.lock().expect("registry lock poisoned");
        registry.files.iter().filter_map(Weak::upgrade).collect()
    }

    /// Closes the least recently used unpinned files until an eighth of the budget is free.
    fn close_over_budget(&self) {
        if self.open.load(Ordering::Relaxed) <= self.max {
            return;
        }
        let Ok(_closing) = self.closing.try_lock() else {
            return;
        };
        let target = self.max - self.max / 8;
        let files = self.live();
        let mut open: Vec<(u64, &Arc<LazyFile>)> = files
            .iter()
            .filter(|file| !file.pinned.load(Ordering::Relaxed) && file.handle().is_some())
            .map(|file| (file.last_used.load(Ordering::Relaxed), file))
            .collect();
        let excess = self.open.load(Ordering::Relaxed).saturating_sub(target);
        let count = excess.min(open.len());
        if count == 0 {
            return;
        }
        if count < open.len() {
            open.select_nth_unstable_by_key(count - 1, |(last_used, _)| *last_used);
        }
        for (_, file) in &open[..count] {
            file.close();
        }
    }
}

impl LazyFile {
    fn path(&self) -> MutexGuard<'_, PathBuf> {
        self.path.lock().expect("file path lock poisoned")
    }

    fn handle(&self) -> MutexGuard<'_, Option<Arc<dyn StorageFile>>> {
        self.handle.lock().expect("file handle lock poisoned")
    }

    /// The open file, reopened when it was closed; the caller's clone keeps it open for the
    /// duration of one call even if it is closed meanwhile.
    fn file(&self) -> io::Result<Arc<dyn StorageFile>> {
        self.last_used.store(self.files.tick(), Ordering::Relaxed);
        if let Some(handle) = &*self.handle() {
            return Ok(handle.clone());
        }
        let reopened = {
            let _paths = self.files.read_paths();
            let mut slot = self.handle();
            if let Some(handle) = &*slot {
                return Ok(handle.clone());
            }
            let path = self.path().clone();
            if self.removed.load(Ordering::Relaxed) {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} was removed while closed", path.display()),
                ));
            }
            let handle = self.storage.open(&path, false).map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!("reopening {}: {error}", path.display()),
                )
            })?;
            *slot = Some(handle.clone());
            handle
        };
        self.files.open.fetch_add(1, Ordering::Relaxed);
        self.files.reopens.fetch_add(1, Ordering::Relaxed);
        self.files.close_over_budget();
        Ok(reopened)
    }

    /// Closes the descriptor unless the file is pinned (checked under the handle's lock, which
    /// pinning holds too).
    fn close(&self) {
        let mut handle = self.handle();
        if self.pinned.load(Ordering::Relaxed) || handle.take().is_none() {
            return;
        }
        self.files.open.fetch_sub(1, Ordering::Relaxed);
        self.files.closes.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for LazyFile {
    fn drop(&mut self) {
        let handle = self.handle.get_mut().map(Option::take);
        if matches!(handle, Ok(Some(_))) {
            self.files.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl StorageFile for LazyFile {
    fn read_at(&self, buf: &mut [u8], position: u64) -> io::Result<usize> {
        self.file()?.read_at(buf, position)
    }

    fn read_exact_into(&self, buf: &mut Vec<u8>, len: usize, position: u64) -> io::Result<()> {
        self.file()?.read_exact_into(buf, len, position)
    }

    fn write_all_at(&self, buf: &[u8], position: u64) -> io::Result<()> {
        self.file()?.write_all_at(buf, position)
    }

    fn size(&self) -> io::Result<u64> {
        self.file()?.size()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file()?.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file()?.sync_data()
    }
}
