//! Safe reading of package zips.
//!
//! Why: packages come from users and from other sites; a zip is the classic carrier of path
//! traversal ("zip slip"), decompression bombs and name tricks. The hub validates every upload
//! with [`inspect`] before it keeps it, and the connector unpacks with [`extract`], which applies
//! the same rules again while it writes.
//!
//! What is refused (each with its own [`PackageError`] variant naming the entry):
//! - names with a `..` component, absolute paths (`/x`, `C:\x`, `C:x`), UNC paths (`\\srv\x`);
//!   backslashes count as separators, so `a\..\..\x` is traversal too;
//! - names no Windows file system can hold: control characters, `<>:"|?*` (which also rules out
//!   NTFS alternate data streams), reserved device names (`CON`, `NUL`, `COM1`…), components that
//!   end with a dot or a space, names longer than [`Limits::max_name_len`];
//! - symbolic links and other special files (from the unix mode in the external attributes);
//! - duplicate names, compared without case (Windows ignores case), and a path that is both a
//!   file and a folder;
//! - more than [`Limits::max_entries`] entries, a declared or actual total above
//!   [`Limits::max_total_size`], one entry above [`Limits::max_entry_size`], a compression ratio
//!   above [`Limits::max_ratio`] for entries larger than [`Limits::ratio_min_size`];
//! - encrypted entries, compression methods other than stored/deflate;
//! - damaged archives: missing central directory, local header that disagrees with the central
//!   directory, CRC-32 mismatch, data shorter or longer than declared (bytes are counted while
//!   decompressing and reading stops one byte after the declared size).
//!
//! Readers: any `Read + Seek`; for a file, pass a `BufReader<File>` (the central directory is
//! parsed in small reads).
//!
//! Everything is streamed: an entry is read through a 64 KiB buffer, never whole into memory.
//! The zip crate keeps the central directory in memory (proportional to the archive's size);
//! the entry count limit is checked right after it is read.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zip::result::ZipError;
use zip::{CompressionMethod, ZipArchive, ZipReadOptions};

use crate::error::PackageError;
use crate::psadt::{self, PackageLayout};

/// Limits applied to every archive. [`Limits::default`] suits software packages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Most entries (files and folders) an archive may have. Default 100,000.
    pub max_entries: usize,
    /// Most bytes all entries may unpack to together. Default 20 GiB.
    pub max_total_size: u64,
    /// Most bytes one entry may unpack to. Default 20 GiB (the total is the real bound).
    pub max_entry_size: u64,
    /// Highest uncompressed:compressed ratio allowed for an entry above
    /// [`Limits::ratio_min_size`]. Default 200.
    pub max_ratio: u64,
    /// Entries up to this size are not ratio-checked (small text files compress very well).
    /// Default 1 MiB.
    pub ratio_min_size: u64,
    /// Longest entry name in bytes. Default 1024.
    pub max_name_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 100_000,
            max_total_size: 20 * 1024 * 1024 * 1024,
            max_entry_size: 20 * 1024 * 1024 * 1024,
            max_ratio: 200,
            ratio_min_size: 1024 * 1024,
            max_name_len: 1024,
        }
    }
}

/// One entry of a validated archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryInfo {
    /// Normalised relative path: `/` separators, no leading `./`, no trailing `/`.
    pub name: String,
    /// True for a folder entry.
    pub is_dir: bool,
    /// Uncompressed size in bytes (verified by reading, for files).
    pub size: u64,
    /// Compressed size in bytes.
    pub compressed_size: u64,
    /// CRC-32 from the central directory.
    pub crc32: u32,
}

/// What [`inspect`] found in a valid archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZipInventory {
    /// Every entry, in archive order.
    pub entries: Vec<EntryInfo>,
    /// Number of file (non-folder) entries.
    pub file_count: usize,
    /// Sum of the uncompressed sizes, verified by reading.
    pub total_size: u64,
    /// PSADT wrapper and MSI files found from the entry names.
    pub layout: PackageLayout,
}

/// What [`extract`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractReport {
    /// Files created.
    pub files_written: usize,
    /// Folders created (including the destination itself if it did not exist).
    pub dirs_created: usize,
    /// Bytes written.
    pub bytes_written: u64,
}

/// One entry after the central-directory checks.
struct Planned {
    index: usize,
    name: String,
    is_dir: bool,
    size: u64,
    compressed_size: u64,
    crc32: u32,
}

const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;

/// Validates a zip completely (names, flags, limits, and every byte of every entry) and returns
/// its inventory. Nothing is written anywhere.
pub fn inspect<R: Read + Seek>(reader: R, limits: &Limits) -> Result<ZipInventory, PackageError> {
    let mut archive = open(reader, limits)?;
    let plans = plan(&archive, limits)?;
    let mut running_total = 0u64;
    let mut sink = io::sink();
    for p in plans.iter().filter(|p| !p.is_dir) {
        stream_entry(&mut archive, p, &mut sink, limits, &mut running_total)?;
    }
    let entries: Vec<EntryInfo> = plans
        .into_iter()
        .map(|p| EntryInfo {
            name: p.name,
            is_dir: p.is_dir,
            size: p.size,
            compressed_size: p.compressed_size,
            crc32: p.crc32,
        })
        .collect();
    let file_count = entries.iter().filter(|e| !e.is_dir).count();
    let layout = psadt::detect(
        entries
            .iter()
            .filter(|e| !e.is_dir)
            .map(|e| e.name.as_str()),
    );
    Ok(ZipInventory {
        entries,
        file_count,
        total_size: running_total,
        layout,
    })
}

/// Copies one file entry (by its normalised name, compared without case) to `out`, after
/// validating the whole archive's central directory with the same rules as [`inspect`]. Use it
/// to hand an MSI to [`crate::read_msi`] through a temporary file. Returns the bytes copied.
pub fn copy_entry<R: Read + Seek, W: Write>(
    reader: R,
    name: &str,
    limits: &Limits,
    out: &mut W,
) -> Result<u64, PackageError> {
    let mut archive = open(reader, limits)?;
    let plans = plan(&archive, limits)?;
    let wanted = name.replace('\\', "/").to_lowercase();
    let p = plans
        .iter()
        .find(|p| !p.is_dir && p.name.to_lowercase() == wanted)
        .ok_or_else(|| PackageError::EntryNotFound {
            name: name.to_string(),
        })?;
    let mut total = 0u64;
    stream_entry(&mut archive, p, out, limits, &mut total)
}

/// Extracts a zip into `dest_dir` (created if missing) with the same rules as [`inspect`],
/// enforced again while writing. Files are created with `create_new` (an existing file is an
/// error, never overwritten); folders already there are reused only if they are plain folders
/// (not symlinks). Nothing is ever written outside `dest_dir`. On any error, every file and
/// folder this call created is removed again before the error is returned.
pub fn extract<R: Read + Seek>(
    reader: R,
    dest_dir: &Path,
    limits: &Limits,
) -> Result<ExtractReport, PackageError> {
    let mut archive = open(reader, limits)?;
    let plans = plan(&archive, limits)?;
    let mut rollback = Rollback::default();
    let report = extract_planned(&mut archive, &plans, dest_dir, limits, &mut rollback)?;
    rollback.disarm();
    Ok(report)
}

fn extract_planned<R: Read + Seek>(
    archive: &mut ZipArchive<R>,
    plans: &[Planned],
    dest_dir: &Path,
    limits: &Limits,
    rollback: &mut Rollback,
) -> Result<ExtractReport, PackageError> {
    // Create the destination (and missing ancestors), remembering what we created.
    let mut missing: Vec<PathBuf> = Vec::new();
    for anc in dest_dir.ancestors() {
        if anc.as_os_str().is_empty() {
            break;
        }
        match fs::symlink_metadata(anc) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(anc.to_path_buf()),
            Err(e) => return Err(write_err(anc, e)),
        }
    }
    for dir in missing.into_iter().rev() {
        fs::create_dir(&dir).map_err(|e| write_err(&dir, e))?;
        rollback.dirs.push(dir);
    }
    match fs::metadata(dest_dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(PackageError::UnsafeDestination {
                path: dest_dir.display().to_string(),
            });
        }
        Err(e) => return Err(write_err(dest_dir, e)),
    }

    let mut report = ExtractReport {
        files_written: 0,
        dirs_created: rollback.dirs.len(),
        bytes_written: 0,
    };
    let mut running_total = 0u64;
    for p in plans {
        let parts: Vec<&str> = p.name.split('/').collect();
        let (dir_parts, file_part) = if p.is_dir {
            (&parts[..], None)
        } else {
            match parts.split_last() {
                Some((last, rest)) => (rest, Some(*last)),
                None => continue,
            }
        };
        let mut cur = dest_dir.to_path_buf();
        for part in dir_parts {
            cur.push(part);
            if ensure_dir(&cur)? {
                rollback.dirs.push(cur.clone());
                report.dirs_created += 1;
            }
        }
        if let Some(file_name) = file_part {
            cur.push(file_name);
            let file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&cur)
                .map_err(|e| write_err(&cur, e))?;
            rollback.files.push(cur.clone());
            let mut out = io::BufWriter::with_capacity(64 * 1024, file);
            let n = stream_entry(archive, p, &mut out, limits, &mut running_total)?;
            out.flush().map_err(|e| write_err(&cur, e))?;
            report.files_written += 1;
            report.bytes_written += n;
        }
    }
    Ok(report)
}

/// Makes sure `path` is a plain folder. Returns true if it was created now.
fn ensure_dir(path: &Path) -> Result<bool, PackageError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_dir() => Ok(false),
        Ok(_) => Err(PackageError::UnsafeDestination {
            path: path.display().to_string(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir(path).map_err(|e| write_err(path, e))?;
            Ok(true)
        }
        Err(e) => Err(write_err(path, e)),
    }
}

fn write_err(path: &Path, source: io::Error) -> PackageError {
    PackageError::Write {
        path: path.display().to_string(),
        source,
    }
}

/// Removes what an extraction created unless disarmed.
#[derive(Default)]
struct Rollback {
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
    disarmed: bool,
}

impl Rollback {
    fn disarm(&mut self) {
        self.disarmed = true;
    }
}

impl Drop for Rollback {
    fn drop(&mut self) {
        if self.disarmed {
            return;
        }
        for f in self.files.iter().rev() {
            let _ = fs::remove_file(f);
        }
        for d in self.dirs.iter().rev() {
            let _ = fs::remove_dir(d);
        }
    }
}

fn open<R: Read + Seek>(mut reader: R, limits: &Limits) -> Result<ZipArchive<R>, PackageError> {
    // The zip crate loads the whole central directory; refuse a huge entry count first.
    if let Some(count) = declared_entry_count(&mut reader)
        && count > limits.max_entries as u64
    {
        return Err(PackageError::TooManyEntries {
            count: usize::try_from(count).unwrap_or(usize::MAX),
            limit: limits.max_entries,
        });
    }
    reader
        .seek(io::SeekFrom::Start(0))
        .map_err(PackageError::Read)?;
    ZipArchive::new(reader).map_err(|e| match e {
        ZipError::Io(io) if io.kind() != io::ErrorKind::UnexpectedEof => PackageError::Read(io),
        other => PackageError::NotAZip(other.to_string()),
    })
}

/// The entry count the end-of-central-directory record declares (zip64 aware), or None when it
/// cannot be found (then the zip crate reports the damage).
fn declared_entry_count<R: Read + Seek>(reader: &mut R) -> Option<u64> {
    let len = reader.seek(io::SeekFrom::End(0)).ok()?;
    let tail_len = len.min(22 + 65_535);
    reader.seek(io::SeekFrom::Start(len - tail_len)).ok()?;
    let mut tail = vec![0u8; usize::try_from(tail_len).ok()?];
    reader.read_exact(&mut tail).ok()?;
    let eocd = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| tail[i..i + 4] == *b"PK\x05\x06")?;
    let count = u64::from(u16::from_le_bytes([tail[eocd + 10], tail[eocd + 11]]));
    if count != 0xFFFF {
        return Some(count);
    }
    // Zip64: the locator (20 bytes) sits just before the EOCD and points at the zip64 record.
    let loc = eocd.checked_sub(20)?;
    if tail[loc..loc + 4] != *b"PK\x06\x07" {
        return Some(count);
    }
    let mut off = [0u8; 8];
    off.copy_from_slice(&tail[loc + 8..loc + 16]);
    let z64 = u64::from_le_bytes(off);
    reader.seek(io::SeekFrom::Start(z64)).ok()?;
    let mut rec = [0u8; 40];
    reader.read_exact(&mut rec).ok()?;
    if rec[0..4] != *b"PK\x06\x06" {
        return Some(count);
    }
    let mut n = [0u8; 8];
    n.copy_from_slice(&rec[32..40]);
    Some(u64::from_le_bytes(n))
}

/// Checks the central directory: names, types, flags, sizes, ratios, duplicates.
fn plan<R: Read + Seek>(
    archive: &ZipArchive<R>,
    limits: &Limits,
) -> Result<Vec<Planned>, PackageError> {
    let count = archive.len();
    if count > limits.max_entries {
        return Err(PackageError::TooManyEntries {
            count,
            limit: limits.max_entries,
        });
    }
    if archive.has_duplicate_names() {
        return Err(PackageError::DuplicateNameExact);
    }
    let mut plans = Vec::with_capacity(count);
    // lower-case key -> original name
    let mut seen: HashMap<String, String> = HashMap::with_capacity(count);
    let mut parents: HashMap<String, String> = HashMap::new();
    let mut declared_total = 0u64;
    let mut compressed_total = 0u64;
    // Where each entry's local header starts and the least its header and data take.
    let mut extents: Vec<(u64, u64, String)> = Vec::with_capacity(count);
    for index in 0..count {
        let entry = archive
            .by_index_data(index)
            .map_err(|e| PackageError::NotAZip(e.to_string()))?;
        let raw_name = match entry.name() {
            Ok(n) => n.into_owned(),
            Err(_) => {
                return Err(PackageError::InvalidName {
                    name: String::from_utf8_lossy(entry.name_raw()).into_owned(),
                    reason: "the name cannot be decoded",
                });
            }
        };
        let (name, is_dir) = normalise_name(&raw_name, limits)?;

        if let Some(mode) = entry.unix_mode() {
            let kind = mode & S_IFMT;
            if kind != 0 && kind != S_IFREG && kind != S_IFDIR {
                return Err(PackageError::SpecialFile { name: raw_name });
            }
        }
        if entry.is_symlink() {
            return Err(PackageError::SpecialFile { name: raw_name });
        }
        if entry.encrypted() {
            return Err(PackageError::Encrypted { name: raw_name });
        }
        let method = entry.compression();
        if method != CompressionMethod::Stored && method != CompressionMethod::Deflated {
            return Err(PackageError::UnsupportedCompression {
                name: raw_name,
                method: format!("{method:?}"),
            });
        }
        let size = entry.size();
        let compressed = entry.compressed_size();
        compressed_total = compressed_total.saturating_add(compressed);
        // A local header is 30 bytes plus the name; the data follows. This is the least an
        // entry occupies, so two entries whose least extents overlap surely overlap.
        let least = 30u64
            .saturating_add(entry.name_raw().len() as u64)
            .saturating_add(compressed);
        extents.push((entry.header_start(), least, raw_name.clone()));
        if is_dir && size != 0 {
            return Err(PackageError::InvalidName {
                name: raw_name,
                reason: "a folder entry carries data",
            });
        }
        if size > limits.max_entry_size {
            return Err(PackageError::EntryTooLarge {
                name: raw_name,
                size,
                limit: limits.max_entry_size,
            });
        }
        declared_total = declared_total.saturating_add(size);
        if declared_total > limits.max_total_size {
            return Err(PackageError::TotalSizeExceeded {
                name: raw_name,
                total: declared_total,
                limit: limits.max_total_size,
            });
        }
        if size > limits.ratio_min_size && size > compressed.saturating_mul(limits.max_ratio) {
            return Err(PackageError::RatioExceeded {
                name: raw_name,
                size,
                compressed,
                ratio: size / compressed.max(1),
                limit: limits.max_ratio,
            });
        }

        let key = name.to_lowercase();
        if let Some(first) = seen.get(&key) {
            return Err(PackageError::DuplicateName {
                first: first.clone(),
                second: raw_name,
            });
        }
        // Every ancestor folder of this entry, for the file-vs-folder check.
        let mut acc = String::new();
        let comps: Vec<&str> = key.split('/').collect();
        let upto = if is_dir { comps.len() } else { comps.len() - 1 };
        for c in &comps[..upto] {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(c);
            parents
                .entry(acc.clone())
                .or_insert_with(|| raw_name.clone());
        }
        seen.insert(key, raw_name);
        plans.push(Planned {
            index,
            name,
            is_dir,
            size,
            compressed_size: compressed,
            crc32: entry.crc32(),
        });
    }
    for p in plans.iter().filter(|p| !p.is_dir) {
        if parents.contains_key(&p.name.to_lowercase()) {
            return Err(PackageError::PathConflict {
                name: p.name.clone(),
            });
        }
    }
    // Many entries each under the per-entry ratio check still add up.
    if declared_total > limits.ratio_min_size
        && declared_total > compressed_total.saturating_mul(limits.max_ratio)
    {
        return Err(PackageError::ArchiveRatioExceeded {
            size: declared_total,
            compressed: compressed_total,
            ratio: declared_total / compressed_total.max(1),
            limit: limits.max_ratio,
        });
    }
    extents.sort_by_key(|(start, _, _)| *start);
    for pair in extents.windows(2) {
        let (start, least, first) = &pair[0];
        if start.saturating_add(*least) > pair[1].0 {
            return Err(PackageError::OverlappingEntries {
                first: first.clone(),
                second: pair[1].2.clone(),
            });
        }
    }
    Ok(plans)
}

/// Normalises and validates an entry name. Returns the relative `/`-separated path and whether
/// it names a folder.
pub fn normalise_name(raw: &str, limits: &Limits) -> Result<(String, bool), PackageError> {
    let err = |reason: &'static str| PackageError::InvalidName {
        name: raw.to_string(),
        reason,
    };
    if raw.is_empty() {
        return Err(err("the name is empty"));
    }
    if raw.len() > limits.max_name_len {
        return Err(err("the name is too long"));
    }
    if raw.chars().any(|c| c.is_control()) {
        return Err(err("the name contains control characters"));
    }
    let s = raw.replace('\\', "/");
    if s.starts_with("//") {
        return Err(PackageError::UncPath {
            name: raw.to_string(),
        });
    }
    if s.starts_with('/') {
        return Err(PackageError::AbsolutePath {
            name: raw.to_string(),
        });
    }
    let b = s.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        return Err(PackageError::AbsolutePath {
            name: raw.to_string(),
        });
    }
    let is_dir = s.ends_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for comp in s.split('/') {
        match comp {
            "" | "." => continue,
            ".." => {
                return Err(PackageError::PathTraversal {
                    name: raw.to_string(),
                });
            }
            _ => {}
        }
        if comp
            .chars()
            .any(|c| matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*'))
        {
            return Err(err(
                "the name contains a character Windows forbids (<>:\"|?*)",
            ));
        }
        if comp.ends_with('.') || comp.ends_with(' ') {
            return Err(err("a path component ends with a dot or a space"));
        }
        if ferry_proto::push::is_reserved_windows_name(comp) {
            return Err(err("a path component is a reserved Windows device name"));
        }
        parts.push(comp);
    }
    if parts.is_empty() {
        return Err(err("the name has no path components"));
    }
    Ok((parts.join("/"), is_dir))
}

/// Streams one file entry into `out`, counting bytes and checking the limits, the declared size
/// and (through the zip reader) the CRC-32.
fn stream_entry<R: Read + Seek, W: Write>(
    archive: &mut ZipArchive<R>,
    p: &Planned,
    out: &mut W,
    limits: &Limits,
    running_total: &mut u64,
) -> Result<u64, PackageError> {
    let name = &p.name;
    let mut file = archive
        .by_index_with_options(
            p.index,
            ZipReadOptions::new().enforce_header_consistency(true),
        )
        .map_err(|e| zip_err(name, p.size, e))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    loop {
        // Never read more than one byte past the declared size.
        let room = (p.size - got).saturating_add(1);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = match file.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(name, p.size, e)),
        };
        got += n as u64;
        if got > p.size {
            return Err(PackageError::SizeMismatch {
                name: name.clone(),
                declared: p.size,
                actual_description: "more bytes than that".to_string(),
            });
        }
        *running_total = running_total.saturating_add(n as u64);
        if *running_total > limits.max_total_size {
            return Err(PackageError::TotalSizeExceeded {
                name: name.clone(),
                total: *running_total,
                limit: limits.max_total_size,
            });
        }
        out.write_all(&buf[..n]).map_err(|e| PackageError::Write {
            path: name.clone(),
            source: e,
        })?;
    }
    if got != p.size {
        return Err(PackageError::SizeMismatch {
            name: name.clone(),
            declared: p.size,
            actual_description: format!("only {got} bytes"),
        });
    }
    Ok(got)
}

fn io_err(name: &str, declared: u64, e: io::Error) -> PackageError {
    let msg = e.to_string();
    if msg.contains("larger than its declared") {
        PackageError::SizeMismatch {
            name: name.to_string(),
            declared,
            actual_description: "more bytes than that".to_string(),
        }
    } else if msg.contains("checksum") {
        PackageError::CrcMismatch {
            name: name.to_string(),
        }
    } else if e.kind() == io::ErrorKind::UnexpectedEof {
        PackageError::Corrupt {
            name: name.to_string(),
            detail: "the data ends early (truncated archive)".to_string(),
        }
    } else {
        PackageError::Corrupt {
            name: name.to_string(),
            detail: msg,
        }
    }
}

fn zip_err(name: &str, declared: u64, e: ZipError) -> PackageError {
    match e {
        ZipError::Io(io) => io_err(name, declared, io),
        ZipError::UnsupportedArchive(msg) if msg.to_lowercase().contains("password") => {
            PackageError::Encrypted {
                name: name.to_string(),
            }
        }
        ZipError::CompressionMethodNotSupported(m) => PackageError::UnsupportedCompression {
            name: name.to_string(),
            method: m.to_string(),
        },
        other => PackageError::Corrupt {
            name: name.to_string(),
            detail: other.to_string(),
        },
    }
}
