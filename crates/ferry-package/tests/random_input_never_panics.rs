//! Property tests: random and mutated bytes never panic `inspect`, `read_msi`,
//! `read_transform`, `read_exe_version` or `read_script`.

mod common;

use std::io::Cursor;
use std::sync::OnceLock;

use ferry_package::{
    Limits, WrapperKind, inspect, read_exe_version, read_msi, read_script, read_transform, sample,
};
use proptest::prelude::*;

fn sample_zip() -> &'static [u8] {
    static Z: OnceLock<Vec<u8>> = OnceLock::new();
    Z.get_or_init(|| sample::filezilla_like().unwrap())
}

fn sample_msi() -> &'static [u8] {
    static M: OnceLock<Vec<u8>> = OnceLock::new();
    M.get_or_init(|| sample::msi(&sample::filezilla_properties()).unwrap())
}

fn sample_transform() -> &'static [u8] {
    use common::packaging::{Change, transform};
    static T: OnceLock<Vec<u8>> = OnceLock::new();
    T.get_or_init(|| {
        transform(&[
            Change::Update("ProductName", "Renamed"),
            Change::Insert("NEW", "1"),
            Change::Delete("Manufacturer"),
        ])
    })
}

fn mutate(base: &[u8], flips: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    let mut v = base.to_vec();
    for (at, x) in flips {
        let i = at % v.len();
        v[i] ^= x | 1;
    }
    if let Some(c) = cut {
        v.truncate(c % (v.len() + 1));
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_inspect(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = inspect(Cursor::new(bytes), &Limits::default());
    }

    #[test]
    fn mutated_zip_never_panics_inspect(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let z = mutate(sample_zip(), &flips, cut);
        let _ = inspect(Cursor::new(z), &Limits::default());
    }

    #[test]
    fn random_bytes_never_panic_read_msi(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = read_msi(Cursor::new(bytes));
    }

    #[test]
    fn mutated_msi_never_panics_read_msi(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let m = mutate(sample_msi(), &flips, cut);
        let _ = read_msi(Cursor::new(m));
    }

    #[test]
    fn random_cfb_header_never_panics_read_msi(tail in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let mut bytes = vec![0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
        bytes.extend(tail);
        let _ = read_msi(Cursor::new(bytes));
    }

    #[test]
    fn random_bytes_never_panic_read_transform(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = read_transform(Cursor::new(bytes));
    }

    #[test]
    fn mutated_transform_never_panics_read_transform(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let m = mutate(sample_transform(), &flips, cut);
        let _ = read_transform(Cursor::new(m));
    }

    #[test]
    fn random_bytes_after_a_pe_header_never_panic_read_exe_version(
        bytes in proptest::collection::vec(any::<u8>(), 0..4096),
    ) {
        let mut pe = b"MZ".to_vec();
        pe.extend(bytes);
        let _ = read_exe_version(Cursor::new(pe));
    }

    #[test]
    fn any_text_never_panics_read_script(text in "\\PC{0,512}") {
        let _ = read_script(WrapperKind::PsadtV3, &text);
        let _ = read_script(WrapperKind::PsadtV4, &text);
    }

    #[test]
    fn script_like_text_never_panics_read_script(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("$appVendor = "), Just("$adtSession = @{"), Just("}"), Just("'"),
                Just("\""), Just("$("), Just(")"), Just("AppName = "), Just("[String]"),
                Just("\u{2019}"), Just("`"), Just("Execute-MSI -Path "), Just("; "), Just("\n"),
                Just("x.msi"), Just("@("),
            ],
            0..64,
        ),
    ) {
        let text: String = parts.concat();
        let _ = read_script(WrapperKind::PsadtV3, &text);
        let _ = read_script(WrapperKind::PsadtV4, &text);
    }
}
