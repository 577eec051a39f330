//! Reading the files a configuration names (the configuration files themselves, secret, key,
//! URL and CA files) without ever hanging or swallowing a huge file: only regular files are
//! read (a FIFO would block `check`, `run` or a reload forever; a device or a directory is not
//! a configuration), and at most a size limit. Opening never blocks either: the file is opened
//! non-blocking and checked on its open handle, so it cannot be swapped for a FIFO in between.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Configuration files (`vast-supervisor.toml`, `conf.d/*.toml`) are read up to this size.
pub const MAX_CONFIG_FILE: u64 = 4 * 1024 * 1024;
/// Secret, key, URL and CA files are read up to this size (a CA bundle of a few hundred
/// certificates fits).
pub const MAX_SECRET_FILE: u64 = 1024 * 1024;

/// The whole content of the regular file at `path`, at most `limit` bytes. The error completes
/// a sentence about the file: "cannot read ... : {error}".
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    let kind = meta.file_type();
    let not_regular = if kind.is_dir() {
        Some("a directory")
    } else if kind.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if kind.is_char_device() || kind.is_block_device() {
        Some("a device")
    } else if kind.is_socket() {
        Some("a socket")
    } else if !kind.is_file() {
        Some("not a regular file")
    } else {
        None
    };
    if let Some(what) = not_regular {
        return Err(format!("it is {what}, not a regular file"));
    }
    if meta.len() > limit {
        return Err(too_large(limit));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > limit {
        return Err(too_large(limit));
    }
    Ok(bytes)
}

/// Why `path` cannot be (or hold) a directory: it, or the nearest of its ancestors that exists,
/// is something else. `None` when a directory can be there (or be created there).
pub fn blocked_directory(path: &Path) -> Option<String> {
    let existing = path
        .ancestors()
        .find_map(|p| std::fs::metadata(p).ok().map(|m| (p, m)))?;
    match existing {
        (_, meta) if meta.is_dir() => None,
        (p, _) if p == path => Some(format!("\"{}\" exists and is not a directory", p.display())),
        (p, _) => Some(format!(
            "\"{}\" is not a directory, so \"{}\" cannot be created",
            p.display(),
            path.display()
        )),
    }
}

/// The longest path a Unix socket can be bound at (`sun_path` holds 108 bytes with the NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// Why a control socket cannot be created at `path`, if it cannot.
pub fn socket_path_problem(path: &Path) -> Option<String> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    // The socket is first bound in a private directory beside it (`control::bind`).
    let staged = parent.map_or(0, |p| p.as_os_str().len()) + "/.XXXX/s".len();
    let longest = path.as_os_str().len().max(staged);
    if longest > MAX_SOCKET_PATH {
        return Some(format!(
            "the path is too long for a Unix socket ({} bytes, at most {MAX_SOCKET_PATH})",
            path.as_os_str().len().max(staged)
        ));
    }
    if std::fs::metadata(path).is_ok_and(|m| m.is_dir()) {
        return Some(format!("\"{}\" is a directory", path.display()));
    }
    parent
        .and_then(blocked_directory)
        .map(|why| format!("the socket cannot be created: {why}"))
}

fn too_large(limit: u64) -> String {
    format!("it is larger than {} KiB", limit / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_of_bounded_size_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "secret\n").unwrap();
        assert_eq!(read_bounded(&file, 100).unwrap(), b"secret\n");
        assert_eq!(
            read_bounded(&file, 3).unwrap_err(),
            "it is larger than 0 KiB"
        );
        assert!(read_bounded(dir.path(), 100)
            .unwrap_err()
            .contains("a directory"));
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(
            read_bounded(&fifo, 100).unwrap_err().contains("FIFO"),
            "no hang"
        );
        assert!(read_bounded(Path::new("/dev/zero"), 100)
            .unwrap_err()
            .contains("a device"));
        assert!(read_bounded(&dir.path().join("missing"), 100)
            .unwrap_err()
            .contains("No such file"));
    }

    #[test]
    fn directories_and_sockets_that_cannot_be_created() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert_eq!(blocked_directory(&dir.path().join("new/sub")), None);
        assert!(blocked_directory(&file)
            .unwrap()
            .contains("is not a directory"));
        assert!(blocked_directory(&file.join("sub"))
            .unwrap()
            .contains("cannot be created"));
        assert_eq!(socket_path_problem(&dir.path().join("control.sock")), None);
        assert!(socket_path_problem(&file.join("c.sock")).is_some());
        assert!(socket_path_problem(dir.path())
            .unwrap()
            .contains("is a directory"));
        let long = dir.path().join("x".repeat(120));
        assert!(socket_path_problem(&long).unwrap().contains("too long"));
    }
}
