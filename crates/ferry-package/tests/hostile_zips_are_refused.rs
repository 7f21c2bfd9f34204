//! Hostile and damaged zips: each gives its own error, from `inspect` and from `extract`, and
//! `extract` leaves nothing behind.

mod common;

use std::io::Cursor;

use common::{deflated, find_all, leftovers, stored};
use ferry_package::{Limits, PackageError, extract, inspect};

/// Runs both `inspect` and `extract` (into a fresh `out` folder) and checks the error of each;
/// afterwards `out` must not exist.
fn assert_refused(zip: &[u8], limits: &Limits, check: impl Fn(&PackageError) -> bool) {
    let err = inspect(Cursor::new(zip), limits).expect_err("inspect must refuse");
    assert!(check(&err), "inspect gave an unexpected error: {err:?}");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let err = extract(Cursor::new(zip), &out, limits).expect_err("extract must refuse");
    assert!(check(&err), "extract gave an unexpected error: {err:?}");
    assert!(!out.exists(), "extract left {} behind", out.display());
    assert_eq!(leftovers(tmp.path()), 0);
}

fn good_then(name: &str, data: &[u8]) -> Vec<u8> {
    stored(&[("ok/first.txt", b"fine"), (name, data)])
}

#[test]
fn zip_slip_dotdot_is_refused_and_nothing_is_written() {
    let zip = good_then("../evil", b"x");
    assert_refused(
        &zip,
        &Limits::default(),
        |e| matches!(e, PackageError::PathTraversal { name } if name == "../evil"),
    );
    // Even when nested deeper and with a backslash separator.
    let zip = good_then("a\\..\\..\\evil", b"x");
    assert_refused(&zip, &Limits::default(), |e| {
        matches!(e, PackageError::PathTraversal { .. })
    });
}

#[test]
fn absolute_unix_path_is_refused() {
    assert_refused(
        &good_then("/etc/x", b"x"),
        &Limits::default(),
        |e| matches!(e, PackageError::AbsolutePath { name } if name == "/etc/x"),
    );
}

#[test]
fn windows_drive_path_is_refused() {
    for name in ["C:\\x", "c:/x", "C:x"] {
        assert_refused(
            &good_then(name, b"x"),
            &Limits::default(),
            |e| matches!(e, PackageError::AbsolutePath { name: n } if n == name),
        );
    }
}

#[test]
fn unc_path_is_refused() {
    assert_refused(
        &good_then("\\\\server\\share\\x", b"x"),
        &Limits::default(),
        |e| matches!(e, PackageError::UncPath { .. }),
    );
}

#[test]
fn names_windows_cannot_hold_are_refused() {
    for name in [
        "Files/CON.txt",
        "Files/nul",
        "x/a.txt:stream",
        "Files/x?.txt",
        "trailing./x",
        "space /x",
        "ctl\u{1}.txt",
    ] {
        assert_refused(&good_then(name, b"x"), &Limits::default(), |e| {
            matches!(e, PackageError::InvalidName { .. })
        });
    }
}

#[test]
fn symlink_entry_is_refused() {
    use std::io::Write;
    use zip::write::SimpleFileOptions;
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    w.start_file("ok.txt", opts).unwrap();
    w.write_all(b"fine").unwrap();
    w.add_symlink("link", "/etc/passwd", opts).unwrap();
    let zip = w.finish().unwrap().into_inner();
    assert_refused(
        &zip,
        &Limits::default(),
        |e| matches!(e, PackageError::SpecialFile { name } if name == "link"),
    );
}

#[test]
fn names_differing_only_in_case_are_refused() {
    let zip = stored(&[("Files/Setup.msi", b"a"), ("files/SETUP.MSI", b"b")]);
    assert_refused(&zip, &Limits::default(), |e| {
        matches!(e, PackageError::DuplicateName { first, second }
            if first == "Files/Setup.msi" && second == "files/SETUP.MSI")
    });
    // A backslash spelling of the same path is the same name too.
    let zip = stored(&[("Files/a.txt", b"a"), ("Files\\A.txt", b"b")]);
    assert_refused(&zip, &Limits::default(), |e| {
        matches!(e, PackageError::DuplicateName { .. })
    });
}

#[test]
fn exact_duplicate_names_are_refused() {
    // The writer refuses exact duplicates, so rename one entry in the bytes.
    let mut zip = stored(&[("dupA.txt", b"a"), ("dupB.txt", b"b")]);
    for at in find_all(&zip, b"dupB.txt") {
        zip[at + 3] = b'A';
    }
    assert_refused(&zip, &Limits::default(), |e| {
        matches!(e, PackageError::DuplicateNameExact)
    });
}

#[test]
fn file_and_folder_with_the_same_path_are_refused() {
    let zip = stored(&[("Files", b"a file"), ("files/inner.txt", b"b")]);
    assert_refused(
        &zip,
        &Limits::default(),
        |e| matches!(e, PackageError::PathConflict { name } if name == "Files"),
    );
}

#[test]
fn ratio_bomb_is_refused() {
    let zeros = vec![0u8; 50 * 1024 * 1024];
    let zip = deflated(&[("ok.txt", b"fine"), ("bomb.bin", &zeros)]);
    drop(zeros);
    assert!(zip.len() < 1024 * 1024, "the bomb should compress well");
    assert_refused(
        &zip,
        &Limits::default(),
        |e| matches!(e, PackageError::RatioExceeded { name, limit: 200, .. } if name == "bomb.bin"),
    );
}

#[test]
fn small_files_are_not_ratio_checked() {
    // 1 MiB of zeros compresses ~1000:1 but is at the threshold, so it is fine.
    let zeros = vec![0u8; 1024 * 1024];
    let zip = deflated(&[("zeros.bin", &zeros)]);
    let inv = inspect(Cursor::new(&zip), &Limits::default()).unwrap();
    assert_eq!(inv.total_size, 1024 * 1024);
}

#[test]
fn total_size_limit_is_enforced() {
    let limits = Limits {
        max_total_size: 1000,
        ..Limits::default()
    };
    let zip = stored(&[("a.bin", &[1u8; 600]), ("b.bin", &[2u8; 600])]);
    assert_refused(
        &zip,
        &limits,
        |e| matches!(e, PackageError::TotalSizeExceeded { name, limit: 1000, .. } if name == "b.bin"),
    );
}

#[test]
fn entry_size_limit_is_enforced() {
    let limits = Limits {
        max_entry_size: 100,
        ..Limits::default()
    };
    let zip = stored(&[("a.bin", &[1u8; 101])]);
    assert_refused(
        &zip,
        &limits,
        |e| matches!(e, PackageError::EntryTooLarge { name, size: 101, .. } if name == "a.bin"),
    );
}

#[test]
fn too_many_entries_are_refused() {
    let limits = Limits {
        max_entries: 3,
        ..Limits::default()
    };
    let zip = stored(&[("1", b""), ("2", b""), ("3", b""), ("4", b"")]);
    assert_refused(&zip, &limits, |e| {
        matches!(e, PackageError::TooManyEntries { count: 4, limit: 3 })
    });
}

#[test]
fn truncated_archive_is_refused() {
    let zip = ferry_package::sample::filezilla_like().unwrap();
    for cut in [zip.len() - 10, zip.len() / 2, 30] {
        assert_refused(&zip[..cut], &Limits::default(), |e| {
            matches!(e, PackageError::NotAZip(_))
        });
    }
}

#[test]
fn garbage_is_not_a_zip() {
    assert_refused(b"this is not a zip at all", &Limits::default(), |e| {
        matches!(e, PackageError::NotAZip(_))
    });
    assert_refused(b"", &Limits::default(), |e| {
        matches!(e, PackageError::NotAZip(_))
    });
}

#[test]
fn crc_corrupted_entry_is_refused_and_rollback_removes_written_files() {
    let payload = b"PAYLOAD-PAYLOAD-PAYLOAD";
    let mut zip = stored(&[("ok/first.txt", b"fine"), ("Files/data.bin", payload)]);
    let at = find_all(&zip, payload)[0];
    zip[at] ^= 0xff;
    // `extract` writes ok/first.txt before it reaches the damaged entry, then removes it.
    assert_refused(
        &zip,
        &Limits::default(),
        |e| matches!(e, PackageError::CrcMismatch { name } if name == "Files/data.bin"),
    );
}

/// Patches the uncompressed size of the entry called `name` in the local and central headers.
fn patch_declared_size(zip: &mut [u8], name: &[u8], size: u32) {
    for at in find_all(zip, name) {
        if at >= 30 && zip[at - 30..at - 26] == *b"PK\x03\x04" {
            zip[at - 8..at - 4].copy_from_slice(&size.to_le_bytes());
        } else if at >= 46 && zip[at - 46..at - 42] == *b"PK\x01\x02" {
            zip[at - 22..at - 18].copy_from_slice(&size.to_le_bytes());
        }
    }
}

#[test]
fn declared_size_smaller_than_the_data_is_refused() {
    let mut zip = stored(&[("ok/first.txt", b"fine"), ("liar.bin", &[7u8; 100])]);
    patch_declared_size(&mut zip, b"liar.bin", 10);
    assert_refused(
        &zip,
        &Limits::default(),
        |e| matches!(e, PackageError::SizeMismatch { name, declared: 10, .. } if name == "liar.bin"),
    );
}

#[test]
fn declared_size_larger_than_the_data_is_refused() {
    let mut zip = deflated(&[("ok/first.txt", b"fine"), ("liar.bin", &[7u8; 100])]);
    patch_declared_size(&mut zip, b"liar.bin", 150);
    assert_refused(&zip, &Limits::default(), |e| {
        matches!(e, PackageError::SizeMismatch { name, declared: 150, .. } if name == "liar.bin")
            || matches!(e, PackageError::CrcMismatch { name } if name == "liar.bin")
    });
}

#[test]
fn encrypted_entry_is_refused() {
    let mut zip = stored(&[("ok/first.txt", b"fine"), ("secret.bin", b"s3cr3t")]);
    // Set general-purpose flag bit 0 (encrypted) in both headers of secret.bin.
    for at in find_all(&zip, b"secret.bin") {
        if at >= 30 && zip[at - 30..at - 26] == *b"PK\x03\x04" {
            zip[at - 24] |= 1;
        } else if at >= 46 && zip[at - 46..at - 42] == *b"PK\x01\x02" {
            zip[at - 38] |= 1;
        }
    }
    assert_refused(
        &zip,
        &Limits::default(),
        |e| matches!(e, PackageError::Encrypted { name } if name == "secret.bin"),
    );
}

#[test]
fn existing_file_in_destination_is_never_overwritten() {
    let zip = ferry_package::sample::filezilla_like().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("pkg");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("Deploy-Application.ps1"), b"mine").unwrap();
    let err = extract(Cursor::new(&zip), &out, &Limits::default()).unwrap_err();
    assert!(matches!(err, PackageError::Write { .. }), "{err:?}");
    // Our file is intact; everything the failed extraction created is gone.
    assert_eq!(
        std::fs::read(out.join("Deploy-Application.ps1")).unwrap(),
        b"mine"
    );
    assert_eq!(leftovers(&out), 1);
}

#[cfg(unix)]
#[test]
fn extraction_never_follows_a_symlinked_folder() {
    let zip = ferry_package::sample::filezilla_like().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let out = tmp.path().join("pkg");
    std::fs::create_dir(&out).unwrap();
    std::os::unix::fs::symlink(&elsewhere, out.join("Files")).unwrap();
    let err = extract(Cursor::new(&zip), &out, &Limits::default()).unwrap_err();
    assert!(
        matches!(err, PackageError::UnsafeDestination { .. }),
        "{err:?}"
    );
    assert_eq!(leftovers(&elsewhere), 0);
    assert_eq!(leftovers(&out), 1, "only the pre-existing symlink remains");
}

#[test]
fn errors_name_the_entry() {
    let err = inspect(Cursor::new(good_then("../evil", b"x")), &Limits::default()).unwrap_err();
    assert!(err.to_string().contains("\"../evil\""), "{err}");
    assert!(err.is_bad_input());
}

#[test]
fn declared_entry_count_is_checked_before_the_directory_is_loaded() {
    let mut zip = stored(&[("a", b"1"), ("b", b"2")]);
    let eocd = *find_all(&zip, b"PK\x05\x06").last().unwrap();
    for off in [8, 10] {
        zip[eocd + off..eocd + off + 2].copy_from_slice(&5000u16.to_le_bytes());
    }
    let limits = Limits {
        max_entries: 1000,
        ..Limits::default()
    };
    assert_refused(&zip, &limits, |e| {
        matches!(
            e,
            PackageError::TooManyEntries {
                count: 5000,
                limit: 1000
            }
        )
    });
}

#[test]
fn many_entries_each_under_the_entry_ratio_still_add_up_to_a_refused_bomb() {
    // 64 entries of 1 MiB of zeros: each at the 1 MiB threshold of the per-entry check, the
    // archive as a whole at about 1000:1.
    let zeros = vec![0u8; 1024 * 1024];
    let names: Vec<String> = (0..64).map(|i| format!("z{i}.bin")).collect();
    let entries: Vec<(&str, &[u8])> = names
        .iter()
        .map(|n| (n.as_str(), zeros.as_slice()))
        .collect();
    let zip = deflated(&entries);
    assert_refused(&zip, &Limits::default(), |e| {
        matches!(e, PackageError::ArchiveRatioExceeded { .. })
    });
}

#[test]
fn entries_sharing_their_bytes_in_the_archive_are_refused() {
    let zip = stored(&[
        ("first.txt", b"the one stream"),
        ("other.txt", b"another stream"),
    ]);
    // Point the second central directory record at the first entry's local header: both
    // entries now unpack the same bytes (an overlapping zip bomb repeats this a thousand times).
    let mut zip = zip;
    let records = find_all(&zip, &[0x50, 0x4b, 0x01, 0x02]);
    assert_eq!(records.len(), 2);
    let offset_field = records[1] + 42;
    zip[offset_field..offset_field + 4].copy_from_slice(&0u32.to_le_bytes());
    assert_refused(&zip, &Limits::default(), |e| {
        matches!(e, PackageError::OverlappingEntries { .. })
    });
}
