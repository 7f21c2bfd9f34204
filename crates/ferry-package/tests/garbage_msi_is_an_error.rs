//! Hostile MSI input: an error, never a panic; and the size cap.

use std::io::Cursor;

use ferry_package::{PackageError, read_msi, read_msi_with_limit, sample};

#[test]
fn garbage_msi_is_an_error_not_a_panic() {
    let err = read_msi(Cursor::new(b"MZ this is not an msi".to_vec())).unwrap_err();
    assert!(matches!(err, PackageError::Msi(_)), "{err:?}");
    let err = read_msi(Cursor::new(Vec::new())).unwrap_err();
    assert!(matches!(err, PackageError::Msi(_)), "{err:?}");
}

#[test]
fn truncated_msi_is_an_error() {
    let msi = sample::msi(&sample::filezilla_properties()).unwrap();
    for cut in [msi.len() / 2, 512, 100] {
        assert!(read_msi(Cursor::new(msi[..cut].to_vec())).is_err());
    }
}

#[test]
fn msi_without_property_table_is_an_error() {
    let mut pkg =
        msi::Package::create(msi::PackageType::Installer, Cursor::new(Vec::new())).unwrap();
    pkg.flush().unwrap();
    let bytes = pkg.into_inner().unwrap().into_inner();
    let err = read_msi(Cursor::new(bytes)).unwrap_err();
    assert!(err.to_string().contains("Property"), "{err}");
}

#[test]
fn msi_above_the_cap_is_refused_before_parsing() {
    let msi = sample::msi(&sample::filezilla_properties()).unwrap();
    let err = read_msi_with_limit(Cursor::new(msi), 100).unwrap_err();
    assert!(
        matches!(err, PackageError::MsiTooLarge { limit: 100, .. }),
        "{err:?}"
    );
}

#[test]
fn missing_properties_are_none() {
    let props = ferry_package::MsiProperties {
        product_name: Some("Only Name".to_string()),
        ..Default::default()
    };
    let bytes = sample::msi(&props).unwrap();
    assert_eq!(read_msi(Cursor::new(bytes)).unwrap(), props);
}

/// A mutation of the sample MSI (found by fuzzing) on which msi 0.11.1 panics inside the crate
/// (an `unwrap()` on parsed data). `read_msi` must catch it and return an error. If a later `msi`
/// release stops panicking here, this input still has to be an error.
#[test]
fn msi_parser_panic_is_caught_and_reported() {
    let mut bytes = sample::msi(&sample::filezilla_properties()).unwrap();
    for (at, x) in [(3057usize, 7u8), (8564, 23)] {
        bytes[at] ^= x;
    }
    let err = read_msi(Cursor::new(bytes)).unwrap_err();
    assert!(matches!(err, PackageError::MsiPanicked), "{err:?}");
}

#[test]
fn msi_read_with_a_deadline_returns_the_properties() {
    let bytes = sample::msi(&sample::filezilla_properties()).unwrap();
    let props = ferry_package::read_msi_with_timeout(
        Cursor::new(bytes),
        ferry_package::MSI_MAX_BYTES,
        std::time::Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(props, sample::filezilla_properties());
    let err = ferry_package::read_msi_with_timeout(
        Cursor::new(b"garbage".to_vec()),
        ferry_package::MSI_MAX_BYTES,
        std::time::Duration::from_secs(30),
    )
    .unwrap_err();
    assert!(matches!(err, PackageError::Msi(_)), "{err:?}");
}
