//! The disk as keel-log sees it: a handful of file operations behind a trait.
//!
//! Everything keel-log writes goes through [`Storage`] and [`StorageFile`], so tests can swap
//! the real file system ([`DiskStorage`]) for the simulator in [`crate::sim`], which loses
//! unsynced bytes on a simulated power cut, tears writes and fails fsync on demand. This module
//! is not a general VFS: it offers only what the log needs.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A file system: directories and files addressed by path.
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Creates `path` and all missing parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Names (not paths) of the entries directly in `path`.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Opens `path` for reading and writing, creating it when `create` is set.
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>>;
    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> bool;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes a directory and everything in it.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Atomically renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the directory's entries (created, renamed, removed files) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Takes an exclusive, advisory lock on `path` (created if missing) for as long as the
    /// returned guard lives, failing with [`io::ErrorKind::WouldBlock`] when another process
    /// holds it. Two processes appending to one partition would interleave bytes and each
    /// truncate the other's "torn" tail, so a data directory has one owner at a time.
    fn lock_exclusive(&self, path: &Path) -> io::Result<DirLock>;
}

/// An open file. Reads and writes are positional, so concurrent readers need no seek lock.
pub trait StorageFile: Send + Sync + std::fmt::Debug {
    /// Reads up to `buf.len()` bytes at `position`; returns how many were read (0 at the end).
    fn read_at(&self, buf: &mut [u8], position: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `position`.
    fn write_all_at(&self, buf: &[u8], position: u64) -> io::Result<()>;
    /// The file's size in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Truncates or extends the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes the file's data durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;

    /// Appends exactly `len` bytes read at `position` to `buf`, or fails as [`read_exact_at`]
    /// does and leaves `buf` as it was. The real file reads into the vector's spare capacity:
    /// a fetch of 1 MiB zeroed first spent a tenth of the server's CPU in `memset` for bytes
    /// the read overwrites at once. This default (the simulator's) zero-fills, then reads.
    fn read_exact_into(&self, buf: &mut Vec<u8>, len: usize, position: u64) -> io::Result<()> {
        let start = buf.len();
        buf.resize(start + len, 0);
        read_exact_at(self, &mut buf[start..], position).inspect_err(|_| buf.truncate(start))
    }
}

/// Reads exactly `buf.len()` bytes at `position`, or fails with `UnexpectedEof`.
pub fn read_exact_at<F: StorageFile + ?Sized>(
    file: &F,
    buf: &mut [u8],
    position: u64,
) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let n = file.read_at(&mut buf[done..], position + done as u64)?;
        if n == 0 {
            return Err(file_ended_early());
        }
        done += n;
    }
    Ok(())
}

/// The error of a read that reached the end of the file before the bytes it had to read.
fn file_ended_early() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "file ended early")
}

/// Proof of an exclusive lock taken by [`Storage::lock_exclusive`]; dropping it unlocks.
#[derive(Debug)]
pub struct DirLock {
    /// The locked file, if the storage locks real files (the OS releases the lock on close).
    _file: Option<File>,
}

impl DirLock {
    /// A guard for storages that have no other process to exclude (the simulator).
    pub fn unshared() -> DirLock {
        DirLock { _file: None }
    }
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct DiskStorage;

#[derive(Debug)]
struct DiskFile {
    file: File,
    path: PathBuf,
}

impl Storage for DiskStorage {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(path)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .open(path)?;
        Ok(Arc::new(DiskFile {
            file,
            path: path.to_path_buf(),
        }))
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir_all(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn lock_exclusive(&self, path: &Path) -> io::Result<DirLock> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: Some(file) }),
            Err(fs::TryLockError::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
            Err(fs::TryLockError::Error(error)) => Err(error),
        }
    }
}

impl StorageFile for DiskFile {
    fn read_at(&self, buf: &mut [u8], position: u64) -> io::Result<usize> {
        self.file.read_at(buf, position)
    }

    /// `pread` straight into the spare capacity, which nothing zeroes. `pread` may fill all of
    /// it (the allocator can give more than was reserved), so what lies past `len` is cut off.
    fn read_exact_into(&self, buf: &mut Vec<u8>, len: usize, position: u64) -> io::Result<()> {
        let start = buf.len();
        let end = start + len;
        buf.reserve_exact(len);
        while buf.len() < end {
            let at = position + (buf.len() - start) as u64;
            match rustix::io::pread(&self.file, rustix::buffer::spare_capacity(buf), at) {
                Ok(0) => {
                    buf.truncate(start);
                    return Err(file_ended_early());
                }
                Ok(_) => {}
                // As `read_exact_at` does: a signal that cut the read short is not an error.
                Err(rustix::io::Errno::INTR) => {}
                Err(error) => {
                    buf.truncate(start);
                    return Err(error.into());
                }
            }
        }
        buf.truncate(end);
        Ok(())
    }

    fn write_all_at(&self, buf: &[u8], position: u64) -> io::Result<()> {
        self.file.write_all_at(buf, position)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data().map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("fdatasync {}: {error}", self.path.display()),
            )
        })
    }
}
