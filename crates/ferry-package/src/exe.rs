//! Reading an installer's version resource (`VS_VERSIONINFO`).
//!
//! Why: a package that wraps an EXE installer and whose wrapper script does not name the
//! application still says, in the installer's version resource, who made it and what it is:
//! `CompanyName`, `ProductName`, `ProductVersion`, `FileVersion`, and the language of its
//! strings.
//!
//! The PE file is parsed with the `object` crate, read lazily: only the headers, the section
//! table, the three resource directory tables on the way to the version resource and the
//! resource itself (at most 64 KiB) are read, each in its own small read, so a 2 GB installer
//! whose payload sits in its resource section costs a few kilobytes. The resource tree is
//! walked exactly three levels deep (type → name → language), so a resource directory that
//! points back at itself cannot loop; the version block is parsed with every length checked
//! against its parent, four levels deep (`VS_VERSIONINFO` → `StringFileInfo` → table →
//! string) and at most [`MAX_NODES`] nodes.
//! Anything malformed is an [`PackageError::Unreadable`], never a panic (the parser also runs
//! under `catch_unwind`).

use std::io::{Read, Seek};
use std::panic::{self, AssertUnwindSafe};

use object::read::ReadCache;
use object::read::pe::{ImageNtHeaders, PeFile};
use serde::{Deserialize, Serialize};

use crate::error::PackageError;

/// Largest version resource read (real ones are a few kilobytes).
const MAX_RESOURCE: u32 = 64 * 1024;
/// Most blocks read from one resource.
const MAX_NODES: usize = 1024;
/// `RT_VERSION`.
const RT_VERSION: u16 = 16;

/// What an installer's version resource says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExeVersion {
    pub company_name: Option<String>,
    pub product_name: Option<String>,
    pub product_version: Option<String>,
    pub file_version: Option<String>,
    pub file_description: Option<String>,
    /// The language of the strings (a LANGID such as 1033), when not neutral.
    pub language_id: Option<u32>,
}

fn unreadable(reason: impl Into<String>) -> PackageError {
    PackageError::Unreadable {
        what: "installer's version resource",
        reason: reason.into(),
    }
}

/// Reads the version resource of a PE file (an `.exe`); `Ok(None)` when it has none.
pub fn read_exe_version<R: Read + Seek>(reader: R) -> Result<Option<ExeVersion>, PackageError> {
    match panic::catch_unwind(AssertUnwindSafe(|| read_inner(reader))) {
        Ok(result) => result,
        Err(_) => Err(PackageError::ParserPanicked {
            what: "installer's version resource",
        }),
    }
}

fn read_inner<R: Read + Seek>(reader: R) -> Result<Option<ExeVersion>, PackageError> {
    let cache = ReadCache::new(reader);
    match object::FileKind::parse(&cache).map_err(|e| unreadable(e.to_string()))? {
        object::FileKind::Pe32 => version_of::<object::pe::ImageNtHeaders32, _>(&cache),
        object::FileKind::Pe64 => version_of::<object::pe::ImageNtHeaders64, _>(&cache),
        other => Err(unreadable(format!("not a Windows executable ({other:?})"))),
    }
}

fn version_of<'d, H: ImageNtHeaders, R: object::ReadRef<'d>>(
    data: R,
) -> Result<Option<ExeVersion>, PackageError> {
    let file = PeFile::<H, R>::parse(data).map_err(|e| unreadable(e.to_string()))?;
    let sections = file.section_table();
    let Some(dir) = file.data_directory(object::pe::IMAGE_DIRECTORY_ENTRY_RESOURCE) else {
        return Ok(None);
    };
    let rva = dir.virtual_address.get(object::LittleEndian);
    if rva == 0 {
        return Ok(None);
    }
    let (base, _) = sections
        .pe_file_range_at(rva)
        .ok_or_else(|| unreadable("the resource directory is outside every section"))?;
    let Some(bytes) = version_resource(data, &sections, u64::from(base))? else {
        return Ok(None);
    };
    parse_version_info(bytes).map(Some)
}

/// Most entries read from one resource directory table.
const MAX_ENTRIES: u64 = 4096;

/// One entry of a resource directory table: its id (named entries have none) and where it
/// points, relative to the resource directory, with the high bit set for a subdirectory.
struct Entry {
    id: Option<u16>,
    target: u32,
}

/// The entries of the table at `offset` (file offset), read in small pieces: never more than
/// the table's own bytes, whatever the section claims.
fn table<'d, R: object::ReadRef<'d>>(data: R, offset: u64) -> Result<Vec<Entry>, PackageError> {
    let header = data
        .read_bytes_at(offset, 16)
        .map_err(|()| unreadable("a resource directory table is cut short"))?;
    let named = u64::from(u16::from_le_bytes([header[12], header[13]]));
    let ids = u64::from(u16::from_le_bytes([header[14], header[15]]));
    let count = (named + ids).min(MAX_ENTRIES);
    let raw = data
        .read_bytes_at(offset + 16, count * 8)
        .map_err(|()| unreadable("a resource directory table is cut short"))?;
    Ok(raw
        .chunks_exact(8)
        .map(|e| {
            let name = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
            Entry {
                id: (name & 0x8000_0000 == 0).then_some((name & 0xffff) as u16),
                target: u32::from_le_bytes([e[4], e[5], e[6], e[7]]),
            }
        })
        .collect())
}

/// The bytes of the first `RT_VERSION` resource: root → type 16 → first name → first
/// language → data. Three fixed steps, each reading only its table: a directory that points
/// at itself cannot loop, and a huge resource section costs nothing.
fn version_resource<'d, R: object::ReadRef<'d>>(
    data: R,
    sections: &object::read::pe::SectionTable<'d>,
    base: u64,
) -> Result<Option<&'d [u8]>, PackageError> {
    const SUBDIRECTORY: u32 = 0x8000_0000;
    let subdirectory = |e: &Entry| -> Result<u64, PackageError> {
        if e.target & SUBDIRECTORY == 0 {
            return Err(unreadable(
                "the version resource nests fewer than three levels",
            ));
        }
        Ok(base + u64::from(e.target & !SUBDIRECTORY))
    };
    let root = table(data, base)?;
    let Some(types) = root.iter().find(|e| e.id == Some(RT_VERSION)) else {
        return Ok(None);
    };
    let names = table(data, subdirectory(types)?)?;
    let Some(name) = names.first() else {
        return Ok(None);
    };
    let langs = table(data, subdirectory(name)?)?;
    let Some(lang) = langs.first() else {
        return Ok(None);
    };
    if lang.target & SUBDIRECTORY != 0 {
        return Err(unreadable(
            "the version resource nests deeper than three levels",
        ));
    }
    let entry = data
        .read_bytes_at(base + u64::from(lang.target), 16)
        .map_err(|()| unreadable("the version resource's data entry is cut short"))?;
    let rva = u32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]);
    let size = u32::from_le_bytes([entry[4], entry[5], entry[6], entry[7]]);
    if size > MAX_RESOURCE {
        return Err(unreadable(format!(
            "the version resource declares {size} bytes, more than {MAX_RESOURCE}"
        )));
    }
    let (offset, available) = sections
        .pe_file_range_at(rva)
        .ok_or_else(|| unreadable("the version resource points outside the file"))?;
    if size > available {
        return Err(unreadable("the version resource runs past its section"));
    }
    data.read_bytes_at(u64::from(offset), u64::from(size))
        .map(Some)
        .map_err(|()| unreadable("the version resource runs past the end of the file"))
}

/// One block of a version resource: its key, value bytes and children.
struct Block<'a> {
    key: String,
    value: &'a [u8],
    /// `wType`: 1 for text values (counted in UTF-16 units), 0 for binary.
    text: bool,
    children: &'a [u8],
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Parses the block at the start of `bytes` (which is 4-aligned); returns it and the length
/// it takes (aligned), so that siblings follow.
fn block(bytes: &[u8]) -> Result<(Block<'_>, usize), PackageError> {
    let length = usize::from(u16_at(bytes, 0).ok_or_else(|| unreadable("truncated block"))?);
    let value_length = usize::from(u16_at(bytes, 2).ok_or_else(|| unreadable("truncated block"))?);
    let text = u16_at(bytes, 4).ok_or_else(|| unreadable("truncated block"))? == 1;
    if length < 6 || length > bytes.len() {
        return Err(unreadable(format!(
            "a block declares {length} bytes where {} remain",
            bytes.len()
        )));
    }
    let body = &bytes[..length];
    // The key: UTF-16 up to a NUL, then padding to 32 bits.
    let mut units = Vec::new();
    let mut at = 6;
    loop {
        let u = u16_at(body, at).ok_or_else(|| unreadable("a block's key has no end"))?;
        at += 2;
        if u == 0 {
            break;
        }
        units.push(u);
    }
    let key = String::from_utf16_lossy(&units);
    let value_start = align4(at).min(body.len());
    let value_bytes = if text { value_length * 2 } else { value_length };
    let value_end = value_start.saturating_add(value_bytes).min(body.len());
    let value = &body[value_start..value_end];
    let children_start = align4(value_end).min(body.len());
    Ok((
        Block {
            key,
            value,
            text,
            children: &body[children_start..],
        },
        align4(length),
    ))
}

/// The blocks directly inside `bytes`.
fn children<'a>(mut bytes: &'a [u8], budget: &mut usize) -> Result<Vec<Block<'a>>, PackageError> {
    let mut out = Vec::new();
    while bytes.len() >= 6 {
        if *budget == 0 {
            return Err(unreadable(format!("more than {MAX_NODES} blocks")));
        }
        *budget -= 1;
        let (b, len) = block(bytes)?;
        out.push(b);
        if len == 0 || len >= bytes.len() {
            break;
        }
        bytes = &bytes[len..];
    }
    Ok(out)
}

fn utf16_text(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|u| *u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

/// Parses `VS_VERSIONINFO` → `StringFileInfo` (string tables keyed `LLLLCCCC`) and
/// `VarFileInfo` (`Translation`).
fn parse_version_info(bytes: &[u8]) -> Result<ExeVersion, PackageError> {
    let mut budget = MAX_NODES;
    let (root, _) = block(bytes)?;
    if root.key != "VS_VERSION_INFO" {
        return Err(unreadable(format!(
            "the version resource starts with {:?}, not VS_VERSION_INFO",
            root.key
        )));
    }
    let mut tables: Vec<(u32, Vec<(String, String)>)> = Vec::new();
    let mut translations: Vec<u32> = Vec::new();
    // Depth: root (1) → StringFileInfo/VarFileInfo (2) → table/Var (3) → string (4).
    for info in children(root.children, &mut budget)? {
        match info.key.as_str() {
            "StringFileInfo" => {
                for table in children(info.children, &mut budget)? {
                    let lang = u32::from_str_radix(table.key.get(..4).unwrap_or(""), 16).ok();
                    let mut strings = Vec::new();
                    for s in children(table.children, &mut budget)? {
                        if s.text {
                            strings.push((s.key, utf16_text(s.value).trim().to_owned()));
                        }
                    }
                    tables.push((lang.unwrap_or(0), strings));
                }
            }
            "VarFileInfo" => {
                for var in children(info.children, &mut budget)? {
                    if var.key == "Translation" {
                        translations.extend(
                            var.value
                                .chunks_exact(4)
                                .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]]))),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    // The table of the first declared translation, else the first table.
    let chosen = translations
        .first()
        .and_then(|lang| tables.iter().find(|(l, _)| l == lang))
        .or_else(|| tables.first());
    let Some((lang, strings)) = chosen else {
        return Ok(ExeVersion::default());
    };
    let get = |key: &str| {
        strings
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty() && !v.chars().any(char::is_control))
    };
    Ok(ExeVersion {
        company_name: get("CompanyName"),
        product_name: get("ProductName"),
        product_version: get("ProductVersion"),
        file_version: get("FileVersion"),
        file_description: get("FileDescription"),
        // The language of the strings read: the chosen table's, else the first translation.
        language_id: Some(*lang)
            .filter(|l| *l != 0)
            .or_else(|| translations.first().copied())
            .filter(|l| *l != 0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version block as `VS_VERSIONINFO` lays it out.
    fn blk(key: &str, text: bool, value: &[u8], children: &[Vec<u8>]) -> Vec<u8> {
        let mut b = vec![0, 0, 0, 0];
        b.extend_from_slice(&u16::from(text).to_le_bytes());
        for u in key.encode_utf16().chain([0]) {
            b.extend_from_slice(&u.to_le_bytes());
        }
        while b.len() % 4 != 0 {
            b.push(0);
        }
        b.extend_from_slice(value);
        while b.len() % 4 != 0 {
            b.push(0);
        }
        for c in children {
            b.extend_from_slice(c);
            while b.len() % 4 != 0 {
                b.push(0);
            }
        }
        let len = b.len() as u16;
        b[0..2].copy_from_slice(&len.to_le_bytes());
        let value_len = if text { value.len() / 2 } else { value.len() } as u16;
        b[2..4].copy_from_slice(&value_len.to_le_bytes());
        b
    }

    fn s(key: &str, value: &str) -> Vec<u8> {
        let v: Vec<u8> = value
            .encode_utf16()
            .chain([0])
            .flat_map(u16::to_le_bytes)
            .collect();
        blk(key, true, &v, &[])
    }

    fn info(strings: &[Vec<u8>], translation: u32) -> Vec<u8> {
        let table = blk("040904b0", true, &[], strings);
        let sfi = blk("StringFileInfo", true, &[], &[table]);
        let var = blk("Translation", false, &translation.to_le_bytes(), &[]);
        let vfi = blk("VarFileInfo", true, &[], &[var]);
        blk("VS_VERSION_INFO", false, &[0u8; 52], &[sfi, vfi])
    }

    #[test]
    fn a_version_block_gives_company_product_version_and_language() {
        let bytes = info(
            &[
                s("CompanyName", "Igor Pavlov"),
                s("ProductName", "7-Zip"),
                s("ProductVersion", "24.09"),
                s("FileVersion", "24.9.0.0"),
            ],
            0x04b0_0409,
        );
        let v = parse_version_info(&bytes).unwrap();
        assert_eq!(v.company_name.as_deref(), Some("Igor Pavlov"));
        assert_eq!(v.product_name.as_deref(), Some("7-Zip"));
        assert_eq!(v.product_version.as_deref(), Some("24.09"));
        assert_eq!(v.file_version.as_deref(), Some("24.9.0.0"));
        assert_eq!(v.language_id, Some(1033));
    }

    #[test]
    fn a_block_longer_than_its_parent_is_unreadable_not_a_panic() {
        let mut bytes = info(&[s("CompanyName", "x")], 0x04b0_0409);
        // Claim the first child is far longer than the resource.
        let first_child = align4(6 + 2 * ("VS_VERSION_INFO".len() + 1)) + 52;
        bytes[first_child..first_child + 2].copy_from_slice(&0xfff0u16.to_le_bytes());
        assert!(parse_version_info(&bytes).is_err());
        for cut in 0..bytes.len() {
            let _ = parse_version_info(&bytes[..cut]);
        }
    }

    #[test]
    fn not_a_pe_file_is_unreadable() {
        let r = read_exe_version(std::io::Cursor::new(b"MZ not really".to_vec()));
        assert!(matches!(r, Err(PackageError::Unreadable { .. })));
    }
}
