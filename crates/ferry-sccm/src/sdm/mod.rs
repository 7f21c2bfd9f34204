//! SDMPackageXML (AppMgmtDigest) codec: [`parse`] / [`parse_str`] read a ConfigMgr application
//! digest into an [`Application`]; [`to_xml`] writes one.
//!
//! The digest is what `SMS_Application.SDMPackageXML` holds and what the AdminService accepts.
//! See the reference document, section 2, for the format; the traps that shaped this code:
//!
//! * **The declared encoding lies.** ConfigMgr serialises to a .NET string, so the declaration
//!   always says `encoding="utf-16"`, even when the bytes are UTF-8. We decode ourselves by BOM
//!   sniffing (`FF FE` UTF-16LE, `FE FF` UTF-16BE, `EF BB BF` UTF-8, otherwise UTF-8) and
//!   ignore the declaration, which may also be missing altogether.
//! * **Several namespaces, re-declared as default namespaces inline** (`Rules` and
//!   `DesiredConfiguration`, spelt *Systems*Center, unlike the root's *System*Center). Elements
//!   are matched by local name *within the expected namespace*; the root must be
//!   `AppMgmtDigest` in the AppMgmtDigest namespace.
//! * **Whitespace is insignificant between elements** (WMI exports are one line); text values
//!   are kept exactly (no trimming), with XML line-end normalisation (CRLF → LF).
//! * **Escaped XML inside text.** Enhanced detection appears twice: as real XML under
//!   `Installer/CustomData/EnhancedDetectionMethod` and as an escaped document in the
//!   `DetectAction` `MethodBody` argument. We read the real one and fall back to parsing the
//!   escaped one. `CustomData` is generally preferred, `DetectAction`/action `Args` are the
//!   fallback (and the primary source for command lines, which clients run from `Args`).
//! * **Large base64 icons** (`Resources/Icon/Data`) are skipped without being copied; only
//!   [`Application::icon_present`] remains.
//!
//! # Example
//!
//! ```
//! use ferry_sccm::sdm::{self, Application, DeploymentType, Detection};
//!
//! let app = Application {
//!     scope_id: "ScopeId_FAA1136B-8C9D-41AC-98A5-926609F05C60".into(),
//!     logical_name: "Application_1142d387-45ff-4d7e-b4af-8a460818d7e7".into(),
//!     revision: 1,
//!     title: "Orca".into(),
//!     deployment_types: vec![DeploymentType {
//!         logical_name: "DeploymentType_3b8d6c12-47ed-4148-83d8-3ea3bb2199fa".into(),
//!         technology: "MSI".into(),
//!         install_command: Some("msiexec /i \"Orca.Msi\" /q".into()),
//!         detection: Detection::MsiProductCode {
//!             product_code: "{6F7CB29F-1319-4816-B345-0856916EB801}".into(),
//!         },
//!         ..DeploymentType::default()
//!     }],
//!     ..Application::default()
//! };
//! let xml = sdm::to_xml(&app);
//! assert!(xml.starts_with(r#"<?xml version="1.0" encoding="utf-16"?>"#));
//! assert_eq!(sdm::parse(xml.as_bytes())?, app);
//! # Ok::<(), sdm::SdmError>(())
//! ```
//!
//! # Why streaming
//!
//! A DOM would allocate every node, including a 40 KB base64 icon and all the annotation
//! and action-argument elements that we throw away. A pull parser (quick-xml's `Reader` over
//! the borrowed text, with our own small namespace tracking) reads each element once, skips
//! unknown subtrees without allocating, and only allocates the strings that end up in the
//! [`Application`]. The decoder is a small recursive descent over that stream (one function
//! per element kind), which keeps it readable. Release-mode throughput on the vectors is
//! about 200 MB/s of CPU time (`tests/sdm_perf.rs`).
//!
//! # What is refused, and why
//!
//! * `<!DOCTYPE …>` (any DTD): ConfigMgr never writes one, and DTDs are how entity-expansion
//!   ("billion laughs") and external-entity attacks get in → [`SdmError::DtdRefused`].
//! * Entities other than the five predefined ones, and character references to characters
//!   XML 1.0 cannot carry (e.g. `&#0;`) → [`SdmError::UndefinedEntity`] / [`SdmError::BadCharRef`].
//!   Literal characters outside XML 1.0's `Char` production are passed through rather than
//!   refused (checking costs a scan of every text, and ConfigMgr never writes them).
//! * Input over [`MAX_INPUT_BYTES`] → [`SdmError::TooLarge`]; nesting deeper than [`MAX_DEPTH`]
//!   → [`SdmError::TooDeep`] (rule expressions are parsed recursively); more than
//!   [`MAX_NS_BINDINGS`] namespace declarations in scope → [`SdmError::Malformed`].
//! * Anything after the root element other than whitespace/comments (several documents
//!   concatenated have been reported in the wild) → [`SdmError::NotAppMgmtDigest`].
//!
//! Unknown elements, attributes, technologies and providers are *not* errors: they are skipped
//! or kept verbatim (e.g. [`DeploymentType::technology`]).
//!
//! # Round trip
//!
//! `parse(to_xml(&a).as_bytes()) == Ok(a)` for every normalised `a`: optional strings are
//! `None` rather than `Some("")`, `Detection::MsiProductCode` has a non-empty product code,
//! `icon_present` is false (icons are never written), text contains only characters XML 1.0
//! can carry (others are written as U+FFFD), and rule operators carry no surrounding
//! whitespace. CR survives because the generator writes it as `&#xD;`.

mod error;
mod model;
mod parse;
mod write;
mod xml;

pub use error::SdmError;
pub use model::{
    ActionArg, Application, ContentFile, DependencyGroup, DependencyItem, DeploymentType,
    Detection, DetectionSetting, ExitCode, Expression, LocalizedInfo, RequirementRule, Rule,
    SettingReference,
};
pub use parse::{parse, parse_str};
pub use write::to_xml;
pub use xml::{MAX_DEPTH, MAX_INPUT_BYTES, MAX_NS_BINDINGS, is_xml_char};
