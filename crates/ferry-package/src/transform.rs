//! Reading what an MSI transform (`.mst`) changes in the Property table.
//!
//! Why: packagers customise vendor MSIs with transforms, and a transform may rename the
//! product or change its version or language; the proposal must say what will be installed.
//!
//! A transform is a compound file like an MSI, with its own string pool, whose table streams
//! hold changes row by row (the database format stores tables column by column). Each change
//! starts with a 16-bit mask: odd → an insert of the first `mask >> 8` columns; `0` → a delete
//! (the key only); otherwise an update of the key columns plus every column whose bit is set.
//! Only the Property table is read (two string columns: `Property`, the key, and `Value`).
//!
//! Like MSIs, transforms are untrusted: the input is capped ([`MST_MAX_BYTES`]), every read is
//! bounds-checked, and the compound-file parser runs under `catch_unwind`. The `msi` crate
//! does not read transforms, so this reader and the test writer are both ours; no third-party
//! transform writer exists on the machines the tests run on.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::panic::{self, AssertUnwindSafe};

use serde::{Deserialize, Serialize};

use crate::error::PackageError;
use crate::msifile::MsiProperties;

/// Largest transform read.
pub const MST_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// The root storage class of a transform (`msidbTransform…`).
pub const TRANSFORM_CLSID: &str = "000c1082-0000-0000-c000-000000000046";
/// Most strings a transform's string pool may hold.
const MAX_STRINGS: usize = 1_000_000;

/// What a transform does to one property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PropertyChange {
    /// Added or given a new value.
    Set(String),
    /// Removed.
    Delete,
}

/// The Property-table changes of a transform, by property name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransformProperties {
    pub changes: BTreeMap<String, PropertyChange>,
}

impl TransformProperties {
    /// `props` as the transform leaves them (only the properties Ferry reads). Returns the
    /// names of the properties it changed.
    pub fn apply(&self, props: &mut MsiProperties) -> Vec<&'static str> {
        let mut changed = Vec::new();
        let fields: [(&'static str, &mut Option<String>); 6] = [
            ("ProductName", &mut props.product_name),
            ("ProductVersion", &mut props.product_version),
            ("Manufacturer", &mut props.manufacturer),
            ("ProductLanguage", &mut props.product_language),
            ("ProductCode", &mut props.product_code),
            ("UpgradeCode", &mut props.upgrade_code),
        ];
        for (name, slot) in fields {
            match self.changes.get(name) {
                Some(PropertyChange::Set(v)) if slot.as_deref() != Some(v) => {
                    *slot = Some(v.clone());
                    changed.push(name);
                }
                Some(PropertyChange::Delete) if slot.take().is_some() => changed.push(name),
                _ => {}
            }
        }
        changed
    }
}

/// Reads the Property changes of a transform of at most [`MST_MAX_BYTES`].
pub fn read_transform<R: Read + Seek>(mut reader: R) -> Result<TransformProperties, PackageError> {
    let size = reader.seek(SeekFrom::End(0)).map_err(PackageError::Read)?;
    if size > MST_MAX_BYTES {
        return Err(PackageError::TooLargeToRead {
            what: "transform",
            size,
            limit: MST_MAX_BYTES,
        });
    }
    reader.rewind().map_err(PackageError::Read)?;
    match panic::catch_unwind(AssertUnwindSafe(|| read_inner(reader))) {
        Ok(result) => result,
        Err(_) => Err(PackageError::ParserPanicked { what: "transform" }),
    }
}

fn bad(message: impl Into<String>) -> PackageError {
    PackageError::Unreadable {
        what: "transform",
        reason: message.into(),
    }
}

fn read_inner<R: Read + Seek>(reader: R) -> Result<TransformProperties, PackageError> {
    let mut cfb =
        cfb::CompoundFile::open(reader).map_err(|e| bad(format!("not a transform: {e}")))?;
    let clsid = cfb.root_entry().clsid().to_string();
    if clsid != TRANSFORM_CLSID {
        return Err(bad(format!(
            "not a transform: its root storage class is {clsid}"
        )));
    }
    let stream = |cfb: &mut cfb::CompoundFile<R>,
                  name: &str,
                  table: bool|
     -> Result<Vec<u8>, PackageError> {
        let path = format!("/{}", encode_stream_name(name, table));
        if !cfb.exists(&path) {
            return Ok(Vec::new());
        }
        let mut s = cfb
            .open_stream(&path)
            .map_err(|e| bad(format!("stream {name}: {e}")))?;
        let mut buf = Vec::new();
        s.by_ref()
            .take(MST_MAX_BYTES)
            .read_to_end(&mut buf)
            .map_err(PackageError::Read)?;
        Ok(buf)
    };
    let pool = stream(&mut cfb, "_StringPool", true)?;
    let data = stream(&mut cfb, "_StringData", true)?;
    let property = stream(&mut cfb, "Property", true)?;
    let strings = StringPool::parse(&pool, &data)?;
    let mut changes = BTreeMap::new();
    let width = strings.ref_width();
    let mut at = 0usize;
    while at < property.len() {
        let mask = u16::from_le_bytes(
            property
                .get(at..at + 2)
                .ok_or_else(|| bad("truncated Property change"))?
                .try_into()
                .map_err(|_| bad("truncated Property change"))?,
        );
        at += 2;
        // Columns present: for an insert the first `mask >> 8`; otherwise the key plus the
        // columns whose bit is set. Property has two columns, both strings.
        let (key_present, value_present) = if mask & 1 == 1 {
            let n = usize::from(mask >> 8);
            if n > 2 {
                return Err(bad(format!("a Property insert names {n} columns")));
            }
            (n >= 1, n >= 2)
        } else {
            (true, mask & 0b10 != 0)
        };
        let mut read_ref = |present: bool| -> Result<Option<String>, PackageError> {
            if !present {
                return Ok(None);
            }
            let bytes = property
                .get(at..at + width)
                .ok_or_else(|| bad("truncated Property change"))?;
            at += width;
            let mut n = u32::from(u16::from_le_bytes([bytes[0], bytes[1]]));
            if width == 3 {
                n |= u32::from(bytes[2]) << 16;
            }
            strings.get(n).map(Some)
        };
        let key = read_ref(key_present)?;
        let value = read_ref(value_present)?;
        let Some(key) = key.filter(|k| !k.is_empty()) else {
            return Err(bad("a Property change without its key"));
        };
        let change = if mask == 0 {
            PropertyChange::Delete
        } else {
            match value {
                Some(v) => PropertyChange::Set(v),
                // An update that leaves the value alone changes nothing Ferry reads.
                None => continue,
            }
        };
        changes.insert(key, change);
    }
    Ok(TransformProperties { changes })
}

/// A transform's (or an MSI's) string pool: the strings, 1-based.
struct StringPool {
    strings: Vec<String>,
    long_refs: bool,
}

impl StringPool {
    fn parse(pool: &[u8], data: &[u8]) -> Result<Self, PackageError> {
        if pool.len() < 4 {
            return Err(bad("the string pool has no header"));
        }
        let header = u32::from_le_bytes([pool[0], pool[1], pool[2], pool[3]]);
        let long_refs = header & 0x8000_0000 != 0;
        let codepage = header & 0x7fff_ffff;
        let mut strings = Vec::new();
        let mut at = 4usize;
        let mut offset = 0usize;
        while at + 4 <= pool.len() {
            let mut len = usize::from(u16::from_le_bytes([pool[at], pool[at + 1]]));
            let refcount = u16::from_le_bytes([pool[at + 2], pool[at + 3]]);
            at += 4;
            if len == 0 && refcount > 0 {
                let long = pool
                    .get(at..at + 4)
                    .ok_or_else(|| bad("truncated string pool"))?;
                len = u32::from_le_bytes([long[0], long[1], long[2], long[3]]) as usize;
                at += 4;
            }
            let bytes = data
                .get(offset..offset.saturating_add(len))
                .ok_or_else(|| bad("the string data is shorter than its pool says"))?;
            offset += len;
            strings.push(decode(bytes, codepage));
            if strings.len() > MAX_STRINGS {
                return Err(bad("the string pool holds too many strings"));
            }
        }
        Ok(StringPool { strings, long_refs })
    }

    fn ref_width(&self) -> usize {
        if self.long_refs { 3 } else { 2 }
    }

    /// String `n` (1-based); 0 is the empty (null) string.
    fn get(&self, n: u32) -> Result<String, PackageError> {
        if n == 0 {
            return Ok(String::new());
        }
        self.strings
            .get(n as usize - 1)
            .cloned()
            .ok_or_else(|| bad(format!("string reference {n} is outside the string pool")))
    }
}

/// Bytes in the pool's codepage (a language transform may use 932, 1251, 936…); Windows-1252
/// when the codepage is neutral (0) or one the `msi` crate does not know.
fn decode(bytes: &[u8], codepage: u32) -> String {
    match i32::try_from(codepage)
        .ok()
        .and_then(msi::CodePage::from_id)
    {
        Some(cp) if codepage != 0 => cp.decode(bytes),
        _ => bytes.iter().map(|&b| cp1252(b)).collect(),
    }
}

/// One Windows-1252 byte as a character.
pub(crate) fn cp1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž',
        '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}',
        'ž', 'Ÿ',
    ];
    match b {
        0x80..=0x9f => HIGH[usize::from(b - 0x80)],
        _ => char::from(b),
    }
}

/// The stream name MSI storage uses for a table (`Property` → `\u{4840}` + pairs of name
/// characters packed into one code point each).
pub fn encode_stream_name(name: &str, is_table: bool) -> String {
    fn b64(c: char) -> Option<u32> {
        match c {
            '0'..='9' => Some(c as u32 - '0' as u32),
            'A'..='Z' => Some(10 + c as u32 - 'A' as u32),
            'a'..='z' => Some(36 + c as u32 - 'a' as u32),
            '.' => Some(62),
            '_' => Some(63),
            _ => None,
        }
    }
    let mut out = String::new();
    if is_table {
        out.push('\u{4840}');
    }
    let mut chars = name.chars().peekable();
    while let Some(c1) = chars.next() {
        match b64(c1) {
            Some(v1) => {
                if let Some(v2) = chars.peek().copied().and_then(b64) {
                    chars.next();
                    out.push(char::from_u32(0x3800 + (v2 << 6) + v1).unwrap_or(c1));
                } else {
                    out.push(char::from_u32(0x4800 + v1).unwrap_or(c1));
                }
            }
            None => out.push(c1),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_stream_names_are_encoded_as_msi_storage_does() {
        // Known from real MSIs (and Wine's msi): the string pool is stored as 䡀㼿䕷䑬㹪䒲䠯.
        assert_eq!(encode_stream_name("_StringPool", true), "䡀㼿䕷䑬㹪䒲䠯");
        let encoded = encode_stream_name("Property", true);
        assert!(encoded.starts_with('\u{4840}'));
        assert_eq!(encoded.chars().count(), 1 + 4);
    }

    #[test]
    fn windows_1252_decodes_its_high_characters() {
        assert_eq!(decode(&[0x80, b'x', 0xe9], 1252), "€xé");
        assert_eq!(decode("é".as_bytes(), 65001), "é");
    }

    #[test]
    fn a_transform_that_renames_and_deletes_changes_the_properties() {
        let mut t = TransformProperties::default();
        t.changes
            .insert("ProductName".into(), PropertyChange::Set("Renamed".into()));
        t.changes
            .insert("ProductLanguage".into(), PropertyChange::Delete);
        let mut p = MsiProperties {
            product_name: Some("Orig".into()),
            product_language: Some("1033".into()),
            ..Default::default()
        };
        assert_eq!(t.apply(&mut p), ["ProductName", "ProductLanguage"]);
        assert_eq!(p.product_name.as_deref(), Some("Renamed"));
        assert_eq!(p.product_language, None);
    }
}
