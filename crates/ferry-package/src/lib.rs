//! # ferry-package
//!
//! What Ferry knows about packages: a zip holding a PSAppDeployToolkit (PSADT) wrapper and an
//! MSI, pushed into ConfigMgr. This crate does no network or process I/O; it reads archives
//! from any `Read + Seek`, writes files only in [`extract`] (never outside its target) and
//! reads a folder only in [`pack_folder`] (never outside its source).
//!
//! - [`archive`]: validate a zip ([`inspect`]) and unpack it safely ([`extract`]); refuses zip
//!   slip, absolute/UNC paths, symlinks, duplicate names, bombs, encrypted and damaged archives.
//! - [`msifile`]: read an MSI's Property table ([`read_msi`]), size-capped and panic-guarded.
//! - [`psadt`]: recognise a PSADT v3/v4 wrapper and find the MSIs from the entry names.
//! - [`lcid`]: language identifiers to names (`1033` → `English(United States)`).
//! - [`propose`](mod@propose): the metadata proposal (package name, commands, detection).
//! - [`sample`]: a FileZilla-like sample package built in memory for the demo and tests.
//!
//! Typical use on the hub:
//!
//! ```
//! use std::io::Cursor;
//! use ferry_package::{Limits, inspect, copy_entry, read_msi, propose};
//!
//! let zip = ferry_package::sample::filezilla_like()?;
//! let inv = inspect(Cursor::new(&zip), &Limits::default())?;
//! let msi_path = inv.layout.primary_msi().unwrap_or_default().to_string();
//! let mut msi_bytes = Vec::new(); // a temporary file in real use
//! copy_entry(Cursor::new(&zip), &msi_path, &Limits::default(), &mut msi_bytes)?;
//! let props = read_msi(Cursor::new(msi_bytes)).ok(); // failure = "metadata unknown"
//! let proposal = propose(&inv, props.as_ref());
//! assert_eq!(
//!     proposal.package_name.as_deref(),
//!     Some("TimKosse_FileZilla_3.46.3_English(United States)")
//! );
//! # Ok::<(), ferry_package::PackageError>(())
//! ```

pub mod archive;
mod error;
pub mod lcid;
pub mod msifile;
pub mod pack;
pub mod propose;
pub mod psadt;
pub mod sample;

pub use archive::{EntryInfo, ExtractReport, Limits, ZipInventory, copy_entry, extract, inspect};
pub use error::PackageError;
pub use ferry_proto::package::{DetectionSpec, Installer, Proposal, ScriptLanguage};
pub use msifile::{
    MSI_MAX_BYTES, MsiProperties, read_msi, read_msi_with_limit, read_msi_with_timeout,
};
pub use pack::{PackReport, pack_folder};
pub use propose::{propose, ps_single_quote, registry_marker_script};
pub use psadt::{PackageLayout, Wrapper, WrapperKind, detect};
