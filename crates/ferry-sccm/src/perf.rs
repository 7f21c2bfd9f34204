//! Helpers for `ferry bench sccm`: a same-run baseline and a large generated inventory.
//!
//! Why it exists: a throughput figure means little without a baseline measured on the same
//! machine in the same run, and the 10 000-application target needs realistic input, produced
//! by the emulator and the codec rather than hand-made.

use crate::Site;
use crate::scripts::{inventory_script, push_script};
use crate::spec::filezilla_example;

/// The baseline: tokenize the document with quick-xml and nothing else (no namespace
/// resolution, no model). UTF-16 input is decoded first, as the digest parser must too.
/// Returns the number of XML events, so the work cannot be optimised away.
pub fn xml_token_pass(bytes: &[u8]) -> usize {
    let decoded;
    let bytes = if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        decoded = String::from_utf16_lossy(&units);
        decoded.as_bytes()
    } else {
        bytes
    };
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut events = 0;
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Eof) | Err(_) => return events,
            Ok(_) => events += 1,
        }
    }
}

/// Why the generated inventory could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum PerfError {
    #[error(transparent)]
    Spec(#[from] crate::SpecError),
    #[error(transparent)]
    Emulator(#[from] crate::EmulatorError),
}

/// The stdout of the inventory script run against an emulated site holding `count`
/// applications (the FileZilla push, replicated under distinct names).
pub fn generated_inventory(count: usize) -> Result<String, PerfError> {
    let mut site = Site::demo();
    let spec = filezilla_example();
    site.run(&crate::generate(&push_script(&spec)?))?;
    site.replicate_application(&spec.application.name, count.saturating_sub(1));
    let inventory = inventory_script(&spec.site.site_code, &spec.site.console_path)?;
    Ok(site.run(&crate::generate(&inventory))?)
}
