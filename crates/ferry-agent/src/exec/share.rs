//! A package installed from a network share (a helpdesk task's `copy_from_share`): the
//! folder is copied to the operation's own folder first, so that the installer runs from a
//! local disk (a share that drops mid-install cannot break it) and nothing runs on the share.
//!
//! Windows reads `\\server\share\…` directly. Elsewhere the agent's `share_mounts` say where
//! each share is mounted. Files copied are bounded (as an unpacked archive is), and symbolic
//! links are not followed: a link on the share cannot pull in files from outside it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferry_proto::ops::split_unc;

/// Most files a share folder may hold.
const MAX_FILES: usize = 100_000;
/// Most bytes copied from a share.
const MAX_BYTES: u64 = 20 * 1024 * 1024 * 1024;

/// Where this device reads `unc`, and the folder the share is mounted at: the UNC path
/// itself on Windows (no mount), else under the mount `mounts` names for the share (keys
/// compare without regard to case, as Windows does).
pub fn resolve(
    unc: &str,
    mounts: &BTreeMap<String, PathBuf>,
) -> Result<(Option<PathBuf>, PathBuf), String> {
    let (share, rest) = split_unc(unc)?;
    if cfg!(windows) {
        return Ok((None, PathBuf::from(unc)));
    }
    let root = mounts
        .iter()
        .find(|(k, _)| k.trim_end_matches('\\').eq_ignore_ascii_case(&share))
        .map(|(_, v)| v)
        .ok_or_else(|| {
            format!(
                "{share} is not mounted on this device (add it to the agent's exec.share_mounts)"
            )
        })?;
    Ok((
        Some(root.clone()),
        rest.iter().fold(root.clone(), |p, part| p.join(part)),
    ))
}

/// Copies the folder `src` into `dest` (created), bounded; returns the bytes copied. `within`:
/// the folder `src` must really lie in once links are resolved (the share's mount). `stop`
/// is checked between files (a cancelled or timed-out operation).
pub fn copy_tree(
    src: &Path,
    dest: &Path,
    within: Option<&Path>,
    stop: &dyn Fn() -> bool,
) -> Result<u64, String> {
    // Walked from where the path really leads, so a link swapped in after the check below
    // cannot redirect the copy.
    let real = src
        .canonicalize()
        .map_err(|e| format!("{}: {e}", src.display()))?;
    if let Some(root) = within {
        let root = root
            .canonicalize()
            .map_err(|e| format!("{}: {e}", root.display()))?;
        if !real.starts_with(&root) {
            return Err(format!(
                "{} leads outside the share (a link to {})",
                src.display(),
                real.display()
            ));
        }
    }
    let meta = std::fs::metadata(&real).map_err(|e| format!("{}: {e}", src.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a folder", src.display()));
    }
    let (mut files, mut bytes) = (0usize, 0u64);
    let mut stack = vec![(real, dest.to_path_buf())];
    while let Some((from, to)) = stack.pop() {
        if stop() {
            return Err("stopped".into());
        }
        std::fs::create_dir_all(&to).map_err(|e| format!("{}: {e}", to.display()))?;
        let entries = std::fs::read_dir(&from).map_err(|e| format!("{}: {e}", from.display()))?;
        for entry in entries {
            if stop() {
                return Err("stopped".into());
            }
            let entry = entry.map_err(|e| format!("{}: {e}", from.display()))?;
            // Folders count too: a share of a million empty folders is no package either.
            files += 1;
            if files > MAX_FILES {
                return Err(format!(
                    "more than {MAX_FILES} files and folders on the share"
                ));
            }
            let kind = entry
                .file_type()
                .map_err(|e| format!("{}: {e}", entry.path().display()))?;
            let target = to.join(entry.file_name());
            if kind.is_dir() {
                stack.push((entry.path(), target));
            } else if kind.is_file() {
                // Checked before copying: one huge file must not fill the disk first.
                let size = entry
                    .metadata()
                    .map_err(|e| format!("{}: {e}", entry.path().display()))?
                    .len();
                if bytes + size > MAX_BYTES {
                    return Err(format!("more than {MAX_BYTES} bytes on the share"));
                }
                bytes += std::fs::copy(entry.path(), &target)
                    .map_err(|e| format!("copying {}: {e}", entry.path().display()))?;
            } else {
                tracing::warn!(path = %entry.path().display(), "not a file or folder on the share; skipped");
            }
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_share_is_found_under_its_mount_whatever_the_case() {
        let mounts = BTreeMap::from([(r"\\FS01\sources$".to_owned(), PathBuf::from("/mnt/src"))]);
        if cfg!(windows) {
            return;
        }
        assert_eq!(
            resolve(r"\\fs01\Sources$\Apps\7zip", &mounts).unwrap().1,
            PathBuf::from("/mnt/src/Apps/7zip")
        );
        assert!(resolve(r"\\fs02\Sources$\x", &mounts).is_err());
    }

    proptest! {
        #[test]
        fn an_accepted_path_never_leaves_its_mount(parts in proptest::collection::vec("[a-z.]{1,4}|\\.\\.", 0..5)) {
            let unc = format!("\\\\fs01\\share\\{}", parts.join("\\"));
            let mounts = BTreeMap::from([(r"\\fs01\share".to_owned(), PathBuf::from("/mnt/share"))]);
            if let Ok((_, p)) = resolve(&unc, &mounts) && !cfg!(windows) {
                prop_assert!(p.starts_with("/mnt/share"));
                prop_assert!(p.components().all(|c| !matches!(c, std::path::Component::ParentDir)));
            }
        }
    }
}

#[cfg(all(test, unix))]
mod copy_tests {
    use super::*;

    #[test]
    fn a_folder_is_copied_with_its_subfolders() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("share").join("app");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("setup.sh"), "echo hi").unwrap();
        std::fs::write(src.join("sub").join("data.bin"), [1u8; 10]).unwrap();
        let dest = dir.path().join("op");
        let bytes = copy_tree(&src, &dest, Some(&dir.path().join("share")), &|| false).unwrap();
        assert_eq!(bytes, 17);
        assert_eq!(
            std::fs::read(dest.join("sub").join("data.bin")).unwrap(),
            [1u8; 10]
        );
    }

    #[test]
    fn a_link_that_leads_outside_the_share_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (share, outside) = (dir.path().join("share"), dir.path().join("secrets"));
        std::fs::create_dir_all(&share).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("key"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, share.join("app")).unwrap();
        let err = copy_tree(
            &share.join("app"),
            &dir.path().join("op"),
            Some(&share),
            &|| false,
        )
        .unwrap_err();
        assert!(err.contains("outside the share"), "{err}");
        assert!(!dir.path().join("op").join("key").exists());
    }

    #[test]
    fn links_inside_the_folder_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("share").join("app");
        std::fs::create_dir_all(&src).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("passwd")).unwrap();
        let dest = dir.path().join("op");
        copy_tree(&src, &dest, None, &|| false).unwrap();
        assert!(!dest.join("passwd").exists());
    }

    #[test]
    fn a_stopped_copy_ends_with_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("app");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("a"), "a").unwrap();
        let err = copy_tree(&src, &dir.path().join("op"), None, &|| true).unwrap_err();
        assert_eq!(err, "stopped");
    }
}
