//! What the hub learns from an uploaded package, through `ferry-package`: the archive is
//! validated entry by entry, the primary MSI's Property table is read, and metadata is
//! proposed. A malformed archive refuses the package; an unreadable MSI only means "metadata
//! unknown".

use std::io::{BufReader, Seek};
use std::path::Path;

use ferry_package::{Limits, copy_entry, inspect as inspect_zip, propose, read_msi};
use ferry_proto::package::PackageMetadata;

/// Inspects the finished upload at `path` (on a blocking thread: zip and MSI parsing are
/// synchronous and CPU-bound). `Err` carries the sentence for the client.
pub async fn inspect(path: &Path) -> Result<PackageMetadata, String> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || inspect_blocking(&path))
        .await
        .map_err(|e| format!("inspection failed: {e}"))?
}

fn inspect_blocking(path: &Path) -> Result<PackageMetadata, String> {
    let limits = Limits::default();
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read the upload: {e}"))?;
    let mut reader = BufReader::new(file);
    let inventory =
        inspect_zip(&mut reader, &limits).map_err(|e| format!("not a valid package: {e}"))?;
    let msi = inventory.layout.primary_msi().and_then(|msi_path| {
        // The MSI is copied out to a temporary file next to the upload (never whole in memory),
        // read, and removed.
        let tmp = path.with_extension("msi.tmp");
        let result = (|| {
            reader.rewind().ok()?;
            let mut out = std::fs::File::create(&tmp).ok()?;
            copy_entry(&mut reader, msi_path, &limits, &mut out).ok()?;
            let file = std::fs::File::open(&tmp).ok()?;
            match read_msi(BufReader::new(file)) {
                Ok(props) => Some(props),
                Err(e) => {
                    tracing::info!(msi = msi_path, error = %e, "MSI metadata unknown");
                    None
                }
            }
        })();
        let _ = std::fs::remove_file(&tmp);
        result
    });
    Ok(PackageMetadata {
        proposal: propose(&inventory, msi.as_ref()),
        msi_properties: msi,
        file_count: inventory.file_count as u64,
        total_size: inventory.total_size,
        overridden: Vec::new(),
        imported_from: None,
    })
}
