//! What the hub learns from an uploaded package, through `ferry-package`: the archive is
//! validated entry by entry, then [`ferry_package::examine`] reads the wrapper script, the
//! chosen MSI and its transforms, or the EXE installer, and proposes metadata. A malformed
//! archive refuses the package; an unreadable file inside it only means "metadata unknown".

use std::io::{BufReader, Seek};
use std::path::{Path, PathBuf};

use ferry_package::{Limits, PackageError, ReadSeek, copy_entry, examine, inspect as inspect_zip};
use ferry_proto::package::PackageMetadata;

/// Inspects the package file at `path` (on a blocking thread: zip, MSI and script parsing are
/// synchronous and CPU-bound), reading metadata from `msi_choice` when given. Entries are
/// copied to temporary files in `scratch`. `Err` carries the sentence for the client.
/// Why a package could not be inspected.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The file is not a valid package (the sentence for the client).
    #[error("{0}")]
    Invalid(String),
    /// The MSI asked for is not in the package.
    #[error("the package holds no MSI {0:?}")]
    NoSuchMsi(String),
}

pub async fn inspect(
    path: &Path,
    scratch: &Path,
    msi_choice: Option<&str>,
) -> Result<PackageMetadata, InspectError> {
    let (path, scratch) = (path.to_owned(), scratch.to_owned());
    let choice = msi_choice.map(str::to_owned);
    tokio::task::spawn_blocking(move || inspect_blocking(&path, &scratch, choice.as_deref()))
        .await
        .map_err(|e| InspectError::Invalid(format!("inspection failed: {e}")))?
}

fn inspect_blocking(
    path: &Path,
    scratch: &Path,
    msi_choice: Option<&str>,
) -> Result<PackageMetadata, InspectError> {
    let limits = Limits::default();
    let file = std::fs::File::open(path)
        .map_err(|e| InspectError::Invalid(format!("cannot read the package: {e}")))?;
    let mut reader = BufReader::new(file);
    let inventory = inspect_zip(&mut reader, &limits)
        .map_err(|e| InspectError::Invalid(format!("not a valid package: {e}")))?;
    let scratch = Scratch::new(scratch);
    let mut open = |name: &str| -> Result<Box<dyn ReadSeek>, PackageError> {
        // Each entry is copied out to a temporary file (an MSI may be gigabytes: never whole
        // in memory), opened, and unlinked at once; the open handle keeps it readable until
        // the reader is dropped.
        reader.rewind().map_err(PackageError::Read)?;
        let tmp = scratch.next();
        let result = (|| {
            let mut out = std::fs::File::create(&tmp).map_err(PackageError::Read)?;
            copy_entry(&mut reader, name, &limits, &mut out)?;
            let file = std::fs::File::open(&tmp).map_err(PackageError::Read)?;
            Ok(Box::new(BufReader::new(file)) as Box<dyn ReadSeek>)
        })();
        let _ = std::fs::remove_file(&tmp);
        result
    };
    let metadata = examine(&inventory, &mut open, msi_choice).map_err(|e| match e {
        PackageError::EntryNotFound { name } => InspectError::NoSuchMsi(name),
        other => InspectError::Invalid(format!("cannot read the package: {other}")),
    })?;
    for note in &metadata.proposal.notes {
        tracing::info!(package = %path.display(), note, "package inspection");
    }
    Ok(metadata)
}

/// Names for the temporary copies of one inspection's entries: `<dir>/<uuid>.entry-<n>.tmp`
/// (unique across concurrent inspections).
struct Scratch {
    dir: PathBuf,
    id: uuid::Uuid,
    n: std::cell::Cell<u32>,
}

impl Scratch {
    fn new(dir: &Path) -> Self {
        Scratch {
            dir: dir.to_owned(),
            id: uuid::Uuid::new_v4(),
            n: std::cell::Cell::new(0),
        }
    }

    fn next(&self) -> PathBuf {
        let n = self.n.get();
        self.n.set(n + 1);
        self.dir.join(format!("{}.entry-{n}.tmp", self.id))
    }
}
