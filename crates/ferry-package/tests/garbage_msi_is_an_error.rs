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
    let mut pkg = msi::Package::create(msi::PackageType::Installer, Cursor::new(Vec::new())).unwrap();
    pkg.flush().unwrap();
    let bytes = pkg.into_inner().unwrap().into_inner();
    let err = read_msi(Cursor::new(bytes)).unwrap_err();
    assert!(err.to_string().contains("Property"), "{err}");
}

#[test]
fn msi_above_the_cap_is_refused_before_parsing() {
    let msi = sample::msi(&sample::filezilla_properties()).unwrap();
    let err = read_msi_with_limit(Cursor::new(msi), 100).unwrap_err();
    assert!(matches!(err, PackageError::MsiTooLarge { limit: 100, .. }), "{err:?}");
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
