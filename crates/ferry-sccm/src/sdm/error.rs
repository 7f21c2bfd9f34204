//! Errors of the SDMPackageXML codec.

/// Why a document could not be decoded.
///
/// Byte offsets of XML errors are offsets into the *decoded* text (UTF-8), which equal the
/// input offsets for UTF-8 input (after a BOM, if any).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdmError {
    #[error("SDMPackageXML is {size} bytes, more than the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("SDMPackageXML is empty")]
    Empty,
    #[error("SDMPackageXML is not valid UTF-8 (at byte {offset})")]
    BadUtf8 { offset: usize },
    #[error("SDMPackageXML is not valid UTF-16: {0}")]
    BadUtf16(&'static str),
    #[error(
        "document type declarations (<!DOCTYPE>) are refused in SDMPackageXML (entity expansion attacks); ConfigMgr never writes one"
    )]
    DtdRefused,
    #[error(
        "undefined entity `&{name};` at byte {offset} (only the five predefined entities and character references are allowed)"
    )]
    UndefinedEntity { name: String, offset: u64 },
    #[error("invalid character reference `&{reference};` at byte {offset}")]
    BadCharRef { reference: String, offset: u64 },
    #[error("elements nested more than {limit} deep at byte {offset}")]
    TooDeep { limit: usize, offset: u64 },
    #[error("malformed XML at byte {offset}: {message}")]
    Malformed { offset: u64, message: String },
    #[error("not an AppMgmtDigest document: {0}")]
    NotAppMgmtDigest(String),
    #[error("invalid value for {what}: {value:?}")]
    InvalidValue { what: &'static str, value: String },
    #[error("the enhanced detection method (MethodBody) is invalid: {0}")]
    BadMethodBody(Box<SdmError>),
}
