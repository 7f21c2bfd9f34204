//! Reading an MSI's Property table.
//!
//! Why: the metadata proposal (vendor, product, version, language, product code) comes from the
//! MSI inside a package. MSIs are untrusted input and the `msi` crate (pure Rust, on top of `cfb`)
//! has `unwrap()`s on parsed data and is known to fail on some real files, so:
//! - the input is capped: [`read_msi`] refuses anything above [`MSI_MAX_BYTES`] (1 GiB; use
//!   [`read_msi_with_limit`] for another cap) before parsing;
//! - every call into the `msi` crate runs under `catch_unwind`; a panic becomes
//!   [`PackageError::MsiPanicked`];
//! - callers should treat any error as "metadata unknown", not as "package invalid".
//!
//! Only the Property table is read (plus what `msi` reads to open a package: summary
//! information, string pool, table catalogue); the embedded cabinets are never touched, so
//! memory stays small even for large MSIs. [`read_msi_with_timeout`] also bounds the time: it
//! parses on a worker thread and gives up waiting after the deadline (the thread cannot be
//! killed; it ends by itself when the parser does).

use std::io::{Read, Seek, SeekFrom};
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::Duration;

use crate::error::PackageError;

/// Default cap on the MSI size [`read_msi`] accepts: 1 GiB.
pub const MSI_MAX_BYTES: u64 = 1024 * 1024 * 1024;

pub use ferry_proto::package::MsiProperties;

/// Reads the Property table of an MSI of at most [`MSI_MAX_BYTES`].
pub fn read_msi<R: Read + Seek>(reader: R) -> Result<MsiProperties, PackageError> {
    read_msi_with_limit(reader, MSI_MAX_BYTES)
}

/// Reads the Property table of an MSI of at most `max_bytes`.
pub fn read_msi_with_limit<R: Read + Seek>(
    mut reader: R,
    max_bytes: u64,
) -> Result<MsiProperties, PackageError> {
    let size = reader.seek(SeekFrom::End(0)).map_err(PackageError::Read)?;
    if size > max_bytes {
        return Err(PackageError::MsiTooLarge {
            size,
            limit: max_bytes,
        });
    }
    reader
        .seek(SeekFrom::Start(0))
        .map_err(PackageError::Read)?;
    match panic::catch_unwind(AssertUnwindSafe(move || read_inner(reader))) {
        Ok(result) => result,
        Err(_) => Err(PackageError::MsiPanicked),
    }
}

/// Like [`read_msi_with_limit`], on a worker thread: returns [`PackageError::MsiTimeout`] if the
/// parse takes longer than `timeout`.
pub fn read_msi_with_timeout<R: Read + Seek + Send + 'static>(
    reader: R,
    max_bytes: u64,
    timeout: Duration,
) -> Result<MsiProperties, PackageError> {
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("ferry-msi-read".to_string())
        .spawn(move || {
            let _ = tx.send(read_msi_with_limit(reader, max_bytes));
        })
        .map_err(PackageError::Read)?;
    match rx.recv_timeout(timeout) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(PackageError::MsiTimeout {
            seconds: timeout.as_secs_f64(),
        }),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(PackageError::MsiPanicked),
    }
}

fn read_inner<R: Read + Seek>(reader: R) -> Result<MsiProperties, PackageError> {
    let mut package = msi::Package::open(reader).map_err(|e| PackageError::Msi(e.to_string()))?;
    if !package.has_table("Property") {
        return Err(PackageError::Msi(
            "the MSI has no Property table".to_string(),
        ));
    }
    let rows = package
        .select_rows(msi::Select::table("Property").columns(&["Property", "Value"]))
        .map_err(|e| PackageError::Msi(e.to_string()))?;
    let mut props = MsiProperties::default();
    for row in rows {
        if row.len() < 2 {
            continue;
        }
        let (Some(key), Some(value)) = (row[0].as_str(), value_text(&row[1])) else {
            continue;
        };
        let slot = match key {
            "ProductName" => &mut props.product_name,
            "ProductVersion" => &mut props.product_version,
            "Manufacturer" => &mut props.manufacturer,
            "ProductCode" => &mut props.product_code,
            "UpgradeCode" => &mut props.upgrade_code,
            "ProductLanguage" => &mut props.product_language,
            _ => continue,
        };
        *slot = Some(value);
    }
    Ok(props)
}

fn value_text(v: &msi::Value) -> Option<String> {
    match v {
        msi::Value::Str(s) => Some(s.clone()),
        msi::Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}
