//! # ferry-package
//!
//! What Ferry knows about packages: a zip holding a PSAppDeployToolkit (PSADT) wrapper around
//! an MSI or an EXE installer, pushed into ConfigMgr. This crate does no network or process
//! I/O; it reads archives from any `Read + Seek`, writes files only in [`extract`] (never
//! outside its target) and reads a folder only in [`pack_folder`] (never outside its source).
//! Files inside a package are opened through a function the caller gives ([`examine::Open`]).
//!
//! - [`archive`]: validate a zip ([`inspect`]) and unpack it safely ([`extract`]); refuses zip
//!   slip, absolute/UNC paths, symlinks, duplicate names, bombs, encrypted and damaged archives.
//! - [`psadt`]: recognise a PSADT v3/v4 wrapper and list the MSIs, transforms, patches and EXE
//!   installers from the entry names.
//! - [`script`]: what a wrapper script declares (`$appVendor = '…'`, `$adtSession = @{…}`),
//!   read as data with the PowerShell grammar, never executed.
//! - [`msifile`]: read an MSI's Property table ([`read_msi`]), size-capped and panic-guarded.
//! - [`transform`]: what an `.mst` changes in the Property table.
//! - [`exe`]: an installer's version resource (`VS_VERSIONINFO`).
//! - [`lcid`]: language identifiers and PSADT codes to names (`1033`, `EN` →
//!   `English(United States)`).
//! - [`examine`](mod@examine): which files to read and in what order; [`propose`](mod@propose):
//!   the metadata proposal (package name, commands, detection) with each value's source.
//! - [`sample`]: a FileZilla-like sample package built in memory for the demo and tests.
//!
//! Typical use on the hub:
//!
//! ```
//! use std::io::Cursor;
//! use ferry_package::{Limits, examine, inspect, open_in_memory};
//! use ferry_proto::package::{FieldSource, MetadataField};
//!
//! let zip = ferry_package::sample::filezilla_like()?;
//! let inv = inspect(Cursor::new(&zip), &Limits::default())?;
//! // The hub opens entries through temporary files; a zip in memory can be read directly.
//! let metadata = examine(&inv, &mut open_in_memory(&zip), None)?;
//! let proposal = &metadata.proposal;
//! assert_eq!(
//!     proposal.package_name.as_deref(),
//!     Some("TimKosse_FileZilla_3.46.3_English(United States)")
//! );
//! assert_eq!(proposal.source(MetadataField::Vendor), Some(FieldSource::Msi));
//! # Ok::<(), ferry_package::PackageError>(())
//! ```

pub mod archive;
mod error;
pub mod examine;
pub mod exe;
pub mod lcid;
pub mod msifile;
pub mod pack;
pub mod propose;
pub mod psadt;
pub mod sample;
pub mod script;
pub mod transform;

pub use archive::{EntryInfo, ExtractReport, Limits, ZipInventory, copy_entry, extract, inspect};
pub use error::PackageError;
pub use examine::{ReadSeek, examine, open_in_memory};
pub use exe::{ExeVersion, read_exe_version};
pub use ferry_proto::package::{
    DetectionSpec, FieldSource, Installer, MetadataField, Proposal, ScriptLanguage,
};
pub use msifile::{
    MSI_MAX_BYTES, MsiProperties, read_msi, read_msi_with_limit, read_msi_with_timeout,
};
pub use pack::{PackReport, pack_folder};
pub use propose::{
    Findings, MsiFinding, derive, file_version_script, propose, ps_single_quote,
    registry_marker_script,
};
pub use psadt::{PackageLayout, Wrapper, WrapperKind, detect};
pub use script::{ScriptFacts, read_script};
pub use transform::{TransformProperties, read_transform};
