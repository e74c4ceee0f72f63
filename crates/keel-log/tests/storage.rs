//! `StorageFile::read_exact_into` on the real disk and on the simulator: the exact bytes
//! appended after what the vector held, and a read past the end failing as `read_exact_at`
//! fails, with the vector left as it was.

use std::io;
use std::path::Path;
use std::sync::Arc;

use keel_log::sim::SimStorage;
use keel_log::{DiskStorage, Storage, StorageFile, read_exact_at};

/// Larger than one page and not a multiple of one, so reads cross pages and end mid-page.
const FILE_BYTES: usize = 3 * 4096 + 123;

/// What the file holds at `position`: no two neighbouring bytes alike, so a read shifted by
/// one byte shows.
fn byte_at(position: usize) -> u8 {
    (position % 251) as u8
}

fn write_file(storage: &dyn Storage, dir: &Path) -> Arc<dyn StorageFile> {
    let file = storage.open(&dir.join("data"), true).expect("create file");
    let bytes: Vec<u8> = (0..FILE_BYTES).map(byte_at).collect();
    file.write_all_at(&bytes, 0).expect("write file");
    file
}

/// Reads `len` bytes at `position` after a prefix, into a vector with `spare` bytes of extra
/// capacity beyond what the read needs (the real file may fill all of it), and checks the
/// result against `read_exact_at` on the same file.
fn check(file: &dyn StorageFile, position: u64, len: usize, spare: usize) {
    let prefix = b"kept".to_vec();
    let mut buf = Vec::with_capacity(prefix.len() + len + spare);
    buf.extend_from_slice(&prefix);
    let read = file.read_exact_into(&mut buf, len, position);

    let mut expected = vec![0u8; len];
    match read_exact_at(file, &mut expected, position) {
        Ok(()) => {
            read.unwrap_or_else(|error| panic!("read {len} at {position}: {error}"));
            assert_eq!(&buf[..prefix.len()], prefix, "prefix at {position}+{len}");
            assert_eq!(&buf[prefix.len()..], expected, "bytes at {position}+{len}");
            let from_file: Vec<u8> = (position as usize..position as usize + len)
                .map(byte_at)
                .collect();
            assert_eq!(expected, from_file, "read_exact_at at {position}+{len}");
        }
        Err(expected_error) => {
            let error = read.expect_err("a read past the end fails");
            assert_eq!(error.kind(), expected_error.kind(), "at {position}+{len}");
            assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
            assert_eq!(buf, prefix, "a failed read leaves the vector as it was");
        }
    }
}

fn check_all(file: &dyn StorageFile) {
    let size = FILE_BYTES as u64;
    for spare in [0, 1, 8192] {
        check(file, 0, FILE_BYTES, spare);
        check(file, 0, 0, spare);
        check(file, 1, 4096, spare);
        check(file, 4095, 2, spare);
        check(file, size - 1, 1, spare);
        check(file, size, 0, spare);
        // Past the end: one byte short, starting at the end, starting beyond it.
        check(file, 0, FILE_BYTES + 1, spare);
        check(file, size - 10, 11, spare);
        check(file, size, 1, spare);
        check(file, size + 4096, 5, spare);
    }
}

#[test]
fn the_real_file_reads_exact_bytes_into_spare_capacity() {
    let dir = tempfile::tempdir().expect("temp dir");
    check_all(&*write_file(&DiskStorage, dir.path()));
}

#[test]
fn the_simulator_reads_exact_bytes_into_spare_capacity() {
    let storage = SimStorage::new();
    let dir = Path::new("/sim");
    storage.create_dir_all(dir).expect("create dir");
    check_all(&*write_file(&storage, dir));
}
