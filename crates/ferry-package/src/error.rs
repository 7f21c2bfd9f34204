//! The one error type of this crate.
//!
//! Every refusal names the entry it is about (where there is one), so that the hub can answer a
//! clear 4xx and the user knows which file of their zip is at fault.

use std::io;

/// Why a package (zip) or an MSI was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackageError {
    /// Zipping a folder failed (see [`crate::pack`]).
    #[error("packing the folder failed: {0}")]
    Pack(String),
    /// The archive is not a zip, or its central directory is missing or damaged.
    #[error("not a readable zip archive (missing or damaged central directory): {0}")]
    NotAZip(String),

    /// An entry would land outside the extraction folder (`..` component).
    #[error("entry {name:?} escapes the package folder (`..` path component)")]
    PathTraversal { name: String },

    /// An entry has an absolute path (`/x`, `C:\x`, `C:x`).
    #[error("entry {name:?} has an absolute path")]
    AbsolutePath { name: String },

    /// An entry names a network (UNC) path (`\\server\share\x`).
    #[error("entry {name:?} is a UNC (network) path")]
    UncPath { name: String },

    /// An entry name that no Windows file system can hold or that is ambiguous
    /// (control characters, `<>:"|?*`, reserved device names, trailing dot or space, empty).
    #[error("entry {name:?} has an invalid name: {reason}")]
    InvalidName { name: String, reason: &'static str },

    /// A symbolic link (or another special file: device, fifo, socket).
    #[error("entry {name:?} is a symbolic link or special file, which packages may not contain")]
    SpecialFile { name: String },

    /// Two entries with the same name once case is ignored (Windows file systems ignore case).
    #[error("entries {first:?} and {second:?} have the same name (ignoring case)")]
    DuplicateName { first: String, second: String },

    /// The central directory lists the very same name more than once.
    #[error("the archive lists the same entry name more than once")]
    DuplicateNameExact,

    /// A file and a folder would have the same path (e.g. file `a` and file `a/b`).
    #[error("entry {name:?} is both a file and a folder")]
    PathConflict { name: String },

    /// The archive has more entries than [`crate::Limits::max_entries`].
    #[error("the archive has {count} entries, more than the limit of {limit}")]
    TooManyEntries { count: usize, limit: usize },

    /// The declared or actual uncompressed total is above [`crate::Limits::max_total_size`].
    #[error(
        "the archive unpacks to more than {limit} bytes (reached {total} at entry {name:?}): refused as a possible zip bomb"
    )]
    TotalSizeExceeded {
        name: String,
        total: u64,
        limit: u64,
    },

    /// One entry is above [`crate::Limits::max_entry_size`].
    #[error("entry {name:?} unpacks to {size} bytes, more than the limit of {limit}")]
    EntryTooLarge { name: String, size: u64, limit: u64 },

    /// An entry's compression ratio is above [`crate::Limits::max_ratio`].
    #[error(
        "entry {name:?} has a compression ratio of {ratio}:1 ({size} bytes from {compressed} bytes), above the limit of {limit}:1: refused as a possible zip bomb"
    )]
    RatioExceeded {
        name: String,
        size: u64,
        compressed: u64,
        ratio: u64,
        limit: u64,
    },

    /// The archive as a whole unpacks to far more than it holds (many entries each just under
    /// the per-entry checks).
    #[error(
        "the archive unpacks to {size} bytes from {compressed} bytes ({ratio}:1), above the limit of {limit}:1: refused as a possible zip bomb"
    )]
    ArchiveRatioExceeded {
        size: u64,
        compressed: u64,
        ratio: u64,
        limit: u64,
    },

    /// Two entries share bytes of the archive (a zip bomb's trick: one compressed stream
    /// unpacked many times).
    #[error(
        "entries {first:?} and {second:?} overlap in the archive: refused as a possible zip bomb"
    )]
    OverlappingEntries { first: String, second: String },

    /// Encrypted entries cannot be inspected and are refused.
    #[error("entry {name:?} is encrypted; packages must not be password-protected")]
    Encrypted { name: String },

    /// A compression method other than stored or deflate.
    #[error(
        "entry {name:?} uses an unsupported compression method ({method}); use stored or deflate"
    )]
    UnsupportedCompression { name: String, method: String },

    /// The entry's data does not match its checksum.
    #[error("entry {name:?} is corrupt: its CRC-32 checksum does not match")]
    CrcMismatch { name: String },

    /// The entry's data is longer or shorter than its header declares.
    #[error("entry {name:?} declares {declared} bytes but its data holds {actual_description}")]
    SizeMismatch {
        name: String,
        declared: u64,
        actual_description: String,
    },

    /// The entry's data is cut short or cannot be decompressed.
    #[error("entry {name:?} is truncated or corrupt: {detail}")]
    Corrupt { name: String, detail: String },

    /// [`crate::copy_entry`] was asked for a file the archive does not hold.
    #[error("the archive has no file {name:?}")]
    EntryNotFound { name: String },

    /// Writing the extracted files failed (disk full, permissions, file already there...).
    #[error("could not write {path:?} while extracting: {source}")]
    Write {
        path: String,
        #[source]
        source: io::Error,
    },

    /// The extraction folder has a symlink or a non-folder where a folder must go.
    #[error("refusing to extract through {path:?}: it exists and is not a plain folder")]
    UnsafeDestination { path: String },

    /// Reading the archive or MSI failed at the I/O level.
    #[error("could not read the input: {0}")]
    Read(#[source] io::Error),

    /// The MSI is larger than the caller-given cap.
    #[error("the MSI is {size} bytes, more than the limit of {limit} bytes for metadata reading")]
    MsiTooLarge { size: u64, limit: u64 },

    /// The MSI could not be parsed (not a compound file, damaged tables...).
    #[error("not a readable MSI: {0}")]
    Msi(String),

    /// The `msi` crate panicked on this input; caught and turned into an error.
    #[error("not a readable MSI: the parser gave up on malformed data")]
    MsiPanicked,

    /// Reading the MSI took longer than the caller allowed.
    #[error("reading the MSI took longer than {seconds} s; gave up")]
    MsiTimeout { seconds: f64 },

    /// A file Ferry reads metadata from (a transform, an installer) is above its cap.
    #[error(
        "the {what} is {size} bytes, more than the limit of {limit} bytes for metadata reading"
    )]
    TooLargeToRead {
        what: &'static str,
        size: u64,
        limit: u64,
    },

    /// A file Ferry reads metadata from is not what it claims or is damaged.
    #[error("the {what} is unreadable: {reason}")]
    Unreadable { what: &'static str, reason: String },

    /// A parser panicked on this input; caught and turned into an error.
    #[error("the {what} is unreadable: the parser gave up on malformed data")]
    ParserPanicked { what: &'static str },

    /// Building a sample package failed (should not happen).
    #[error("could not build the sample package: {0}")]
    Sample(String),
}

impl PackageError {
    /// True when the input itself is at fault (answer 4xx / "metadata unknown"); false for
    /// failures of this machine (reading the input stream, writing the extracted files, building
    /// a sample), which deserve a 5xx or a retry.
    pub fn is_bad_input(&self) -> bool {
        !matches!(
            self,
            PackageError::Read(_)
                | PackageError::Write { .. }
                | PackageError::UnsafeDestination { .. }
                | PackageError::Sample(_)
                | PackageError::Pack(_)
        )
    }
}
