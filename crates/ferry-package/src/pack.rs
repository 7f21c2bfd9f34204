//! Zipping a folder: the reverse of [`crate::extract`], used when a connector imports an
//! application's sources from its content location.
//!
//! The archive is deterministic (entries sorted by path, fixed timestamps), so importing the
//! same sources twice gives the same bytes, the same SHA-256 and therefore the same package on
//! the hub. Files are streamed into the archive; symlinks are refused rather than followed, so
//! a link in a content folder cannot pull in files from elsewhere.

use std::fs::File;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use crate::PackageError;

/// What [`pack_folder`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackReport {
    pub files: usize,
    pub bytes: u64,
}

/// Writes every file under `dir` into a zip on `out`, with `/`-separated relative names.
pub fn pack_folder<W: Write + Seek>(dir: &Path, out: W) -> Result<PackReport, PackageError> {
    let err = |e: zip::result::ZipError| PackageError::Pack(e.to_string());
    let io = |e: std::io::Error| PackageError::Pack(e.to_string());
    let mut entries = Vec::new();
    collect(dir, dir, &mut entries)?;
    entries.sort();
    let opts = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(DateTime::default())
        .unix_permissions(0o644);
    let mut zip = ZipWriter::new(out);
    let mut report = PackReport { files: 0, bytes: 0 };
    for (name, path) in entries {
        zip.start_file(name.as_str(), opts).map_err(err)?;
        let mut file = File::open(&path).map_err(io)?;
        report.bytes += std::io::copy(&mut file, &mut zip).map_err(io)?;
        report.files += 1;
    }
    zip.finish().map_err(err)?;
    Ok(report)
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<(), PackageError> {
    let io = |e: std::io::Error| PackageError::Pack(format!("{}: {e}", dir.display()));
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        let kind = entry.file_type().map_err(io)?;
        if kind.is_symlink() {
            return Err(PackageError::Pack(format!(
                "{} is a symbolic link; refusing to follow it",
                path.display()
            )));
        }
        if kind.is_dir() {
            collect(root, &path, out)?;
        } else if kind.is_file() {
            let rel = path
                .strip_prefix(root)
                .map_err(|e| PackageError::Pack(e.to_string()))?;
            let name: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push((name.join("/"), path));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_then_extracting_gives_the_same_files_and_the_same_bytes_twice() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("Files")).unwrap();
        std::fs::write(src.join("Deploy-Application.ps1"), b"# install").unwrap();
        std::fs::write(src.join("Files/app.msi"), vec![7u8; 5000]).unwrap();
        let mut a = std::io::Cursor::new(Vec::new());
        let mut b = std::io::Cursor::new(Vec::new());
        assert_eq!(
            pack_folder(&src, &mut a).unwrap(),
            PackReport {
                files: 2,
                bytes: 5009
            }
        );
        pack_folder(&src, &mut b).unwrap();
        assert_eq!(a.get_ref(), b.get_ref(), "deterministic");
        let out = dir.path().join("out");
        crate::extract(
            std::io::Cursor::new(a.into_inner()),
            &out,
            &crate::Limits::default(),
        )
        .unwrap();
        assert_eq!(
            std::fs::read(out.join("Files/app.msi")).unwrap(),
            vec![7u8; 5000]
        );
    }
}
