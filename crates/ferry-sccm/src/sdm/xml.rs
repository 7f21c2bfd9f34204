//! Low-level reading: byte decoding and a thin pull layer over quick-xml's `Reader`.
//!
//! The layer hands out child elements one at a time (`next_child`), reads an element's text
//! (`text`), or skips an element (`skip`). It enforces the safety rules of the codec in one
//! place: no DTD, only predefined entities and character references, a nesting limit.

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

use super::error::SdmError;

/// Largest document accepted, in bytes (of the input, before decoding). Real digests are
/// below 100 KB; the biggest carry a base64 icon.
pub const MAX_INPUT_BYTES: usize = 16 * 1024 * 1024;

/// Deepest element nesting accepted. Real digests nest about 12 deep (rule expressions add a
/// few levels each); the limit bounds the recursion of the expression parser.
pub const MAX_DEPTH: usize = 100;

/// Most namespace declarations in scope at once. Real digests have about four; the cap keeps
/// the per-element namespace lookup cheap on hostile input.
pub const MAX_NS_BINDINGS: usize = 64;

pub(crate) const NS_DIGEST: &str =
    "http://schemas.microsoft.com/SystemCenterConfigurationManager/2009/AppMgmtDigest";
pub(crate) const NS_RULES: &str =
    "http://schemas.microsoft.com/SystemsCenterConfigurationManager/2009/06/14/Rules";
pub(crate) const NS_DC: &str = "http://schemas.microsoft.com/SystemsCenterConfigurationManager/2009/07/10/DesiredConfiguration";
pub(crate) const NS_XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// The namespaces the codec distinguishes.
///
/// Namespaces are tracked here rather than with quick-xml's `NsReader`: we only need to tell
/// three URIs apart, and a declaration is rare (a substring test on the start tag finds it),
/// which makes the per-element cost a short scan of a handful of bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ns {
    Digest,
    Rules,
    Dc,
    Other,
}

/// Decodes input bytes to text by BOM sniffing; the XML declaration's `encoding` is ignored
/// (ConfigMgr always says `utf-16`, whatever the bytes are).
pub(crate) fn decode(bytes: &[u8]) -> Result<Cow<'_, str>, SdmError> {
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(SdmError::TooLarge {
            size: bytes.len(),
            limit: MAX_INPUT_BYTES,
        });
    }
    match bytes {
        [0xFF, 0xFE, rest @ ..] => decode_utf16(rest, u16::from_le_bytes).map(Cow::Owned),
        [0xFE, 0xFF, rest @ ..] => decode_utf16(rest, u16::from_be_bytes).map(Cow::Owned),
        [0xEF, 0xBB, 0xBF, rest @ ..] => utf8(rest),
        // No BOM but clearly UTF-16 ("<" followed or preceded by a NUL byte).
        [b'<', 0, ..] => decode_utf16(bytes, u16::from_le_bytes).map(Cow::Owned),
        [0, b'<', ..] => decode_utf16(bytes, u16::from_be_bytes).map(Cow::Owned),
        _ => utf8(bytes),
    }
}

fn utf8(bytes: &[u8]) -> Result<Cow<'_, str>, SdmError> {
    std::str::from_utf8(bytes)
        .map(Cow::Borrowed)
        .map_err(|e| SdmError::BadUtf8 {
            offset: e.valid_up_to(),
        })
}

fn decode_utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> Result<String, SdmError> {
    if !bytes.len().is_multiple_of(2) {
        return Err(SdmError::BadUtf16("odd number of bytes"));
    }
    let units = bytes.chunks_exact(2).map(|c| unit([c[0], c[1]]));
    let mut out = String::with_capacity(bytes.len() / 2 + bytes.len() / 8);
    for ch in char::decode_utf16(units) {
        out.push(ch.map_err(|_| SdmError::BadUtf16("unpaired surrogate"))?);
    }
    Ok(out)
}

/// True for the characters XML 1.0 can carry (production `Char`).
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Resolves the body of a `&...;` reference (without `&` and `;`) and appends it.
fn resolve_ref(name: &str, out: &mut String, offset: u64) -> Result<(), SdmError> {
    let ch = match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "apos" => '\'',
        "quot" => '"',
        _ => {
            let Some(num) = name.strip_prefix('#') else {
                return Err(SdmError::UndefinedEntity {
                    name: name.to_owned(),
                    offset,
                });
            };
            let code = match num.strip_prefix('x') {
                Some(hex) => u32::from_str_radix(hex, 16),
                None => num.parse::<u32>(),
            };
            match code
                .ok()
                .and_then(char::from_u32)
                .filter(|c| is_xml_char(*c))
            {
                Some(c) if !num.starts_with(['+', '-']) => c,
                _ => {
                    return Err(SdmError::BadCharRef {
                        reference: name.to_owned(),
                        offset,
                    });
                }
            }
        }
    };
    out.push(ch);
    Ok(())
}

/// Decodes an attribute value: references, then attribute-value normalisation (literal tab,
/// CR, LF and CRLF become one space; characters written as references are kept).
pub(crate) fn decode_attr(raw: &str, offset: u64) -> Result<Cow<'_, str>, SdmError> {
    if !raw.contains(['&', '\t', '\n', '\r']) {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find(['&', '\t', '\n', '\r']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix('&') {
            let Some(end) = after.find(';') else {
                return Err(SdmError::Malformed {
                    offset,
                    message: "unterminated entity reference in attribute value".into(),
                });
            };
            resolve_ref(&after[..end], &mut out, offset)?;
            rest = &after[end + 1..];
        } else {
            out.push(' ');
            rest = tail.strip_prefix("\r\n").unwrap_or(&tail[1..]);
        }
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

/// An element start (or empty element) handed out by [`Xml::next_child`].
pub(crate) struct Elem<'a> {
    pub ns: Ns,
    pub empty: bool,
    start: BytesStart<'a>,
}

impl Elem<'_> {
    /// Local name (prefix stripped).
    pub fn name(&self) -> &str {
        self.start.local_name().into_inner()
    }

    /// Is this element `name` in namespace `ns`?
    pub fn is(&self, ns: Ns, name: &str) -> bool {
        self.ns == ns && self.name() == name
    }

    /// Calls `f(name, value)` for each unprefixed attribute, value decoded.
    pub fn attrs(
        &self,
        offset: u64,
        mut f: impl FnMut(&str, Cow<'_, str>),
    ) -> Result<(), SdmError> {
        for attr in self.start.attributes() {
            let attr = attr.map_err(|e| SdmError::Malformed {
                offset,
                message: e.to_string(),
            })?;
            let key = attr.key.into_inner();
            if key.contains(':') || key == "xmlns" {
                continue;
            }
            f(key, decode_attr(&attr.value, offset)?);
        }
        Ok(())
    }

    /// Value of one attribute (empty when absent).
    pub fn attr(&self, offset: u64, name: &str) -> Result<String, SdmError> {
        let mut out = String::new();
        self.attrs(offset, |k, v| {
            if k == name {
                out = v.into_owned();
            }
        })?;
        Ok(out)
    }
}

/// Pull reader over decoded text.
pub(crate) struct Xml<'a> {
    reader: Reader<&'a [u8]>,
    /// Depth of the innermost open element (the root is 1).
    depth: usize,
    /// Namespace declarations in scope, innermost last.
    bindings: Vec<Binding>,
}

/// `xmlns[:prefix]="uri"` declared on the element at `depth`.
struct Binding {
    depth: usize,
    prefix: String,
    ns: Ns,
}

fn classify(uri: &str) -> Ns {
    match uri {
        NS_DIGEST => Ns::Digest,
        NS_RULES => Ns::Rules,
        NS_DC => Ns::Dc,
        _ => Ns::Other,
    }
}

impl<'a> Xml<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut reader = Reader::from_str(text);
        let config = reader.config_mut();
        config.trim_text(false);
        config.expand_empty_elements = false;
        config.check_end_names = true;
        config.check_comments = true;
        config.allow_dangling_amp = false;
        config.allow_unmatched_ends = false;
        Xml {
            reader,
            depth: 0,
            bindings: Vec::new(),
        }
    }

    /// Position for error messages.
    pub fn pos(&self) -> u64 {
        self.reader.buffer_position()
    }

    fn malformed(&self, e: quick_xml::Error) -> SdmError {
        SdmError::Malformed {
            offset: self.reader.error_position(),
            message: e.to_string(),
        }
    }

    fn unexpected_eof(&self) -> SdmError {
        SdmError::Malformed {
            offset: self.pos(),
            message: "unexpected end of document".into(),
        }
    }

    /// Reads one event, keeping depth and namespace bindings up to date (every read goes
    /// through here), and resolves the namespace of element starts (`Ns::Other` otherwise).
    fn read(&mut self) -> Result<(Ns, Event<'a>), SdmError> {
        let ev = match self.reader.read_event() {
            Ok(ev) => ev,
            Err(e) => return Err(self.malformed(e)),
        };
        let ns = match &ev {
            Event::Start(start) => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(SdmError::TooDeep {
                        limit: MAX_DEPTH,
                        offset: self.pos(),
                    });
                }
                self.bind(start, self.depth)?
            }
            Event::Empty(start) => {
                let depth = self.depth + 1;
                let ns = self.bind(start, depth)?;
                self.unbind(depth);
                ns
            }
            Event::End(_) => {
                self.unbind(self.depth);
                self.depth = self.depth.saturating_sub(1);
                Ns::Other
            }
            Event::DocType(_) => return Err(SdmError::DtdRefused),
            _ => Ns::Other,
        };
        Ok((ns, ev))
    }

    /// Records the namespace declarations of `start` and resolves its name.
    fn bind(&mut self, start: &BytesStart<'_>, depth: usize) -> Result<Ns, SdmError> {
        if start.attributes_raw().contains("xmlns") {
            let offset = self.pos();
            for attr in start.attributes() {
                let attr = attr.map_err(|e| SdmError::Malformed {
                    offset,
                    message: e.to_string(),
                })?;
                let key = attr.key.into_inner();
                let prefix = match key.strip_prefix("xmlns") {
                    Some("") => "",
                    Some(rest) => match rest.strip_prefix(':') {
                        Some(prefix) => prefix,
                        None => continue,
                    },
                    None => continue,
                };
                if self.bindings.len() >= MAX_NS_BINDINGS {
                    return Err(SdmError::Malformed {
                        offset,
                        message: format!(
                            "more than {MAX_NS_BINDINGS} namespace declarations in scope"
                        ),
                    });
                }
                let uri = decode_attr(&attr.value, offset)?;
                self.bindings.push(Binding {
                    depth,
                    prefix: prefix.to_owned(),
                    ns: classify(&uri),
                });
            }
        }
        let name = start.name().into_inner();
        let found = match name.split_once(':') {
            // The common case (default namespace) without a string comparison.
            None => self.bindings.iter().rev().find(|b| b.prefix.is_empty()),
            Some((prefix, _)) => self.bindings.iter().rev().find(|b| b.prefix == prefix),
        };
        Ok(found.map_or(Ns::Other, |b| b.ns))
    }

    /// Drops the declarations made at `depth` or deeper.
    fn unbind(&mut self, depth: usize) {
        while self.bindings.last().is_some_and(|b| b.depth >= depth) {
            self.bindings.pop();
        }
    }

    /// Checks a reference found where its value is not needed (it still must be legal).
    fn check_ref(&self, name: &str) -> Result<(), SdmError> {
        let mut scratch = String::new();
        resolve_ref(name, &mut scratch, self.pos())
    }

    /// Reads up to the root element. Everything before it must be a declaration, a comment,
    /// a processing instruction or whitespace; `Ok(None)` if there is no element at all.
    pub fn root(&mut self) -> Result<Option<Elem<'a>>, SdmError> {
        loop {
            let (ns, ev) = self.read()?;
            match ev {
                Event::Start(start) => {
                    return Ok(Some(Elem {
                        ns,
                        empty: false,
                        start,
                    }));
                }
                Event::Empty(start) => {
                    return Ok(Some(Elem {
                        ns,
                        empty: true,
                        start,
                    }));
                }
                Event::Eof => return Ok(None),
                Event::Text(t) if t.trim().is_empty() => {}
                Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
                _ => {
                    return Err(SdmError::NotAppMgmtDigest(
                        "text before the root element".into(),
                    ));
                }
            }
        }
    }

    /// After the root element closed: only whitespace, comments and PIs may follow. A second
    /// element or declaration means several documents were concatenated (seen in the wild);
    /// refusing is safer than reading only the first.
    pub fn finish(&mut self) -> Result<(), SdmError> {
        loop {
            let (_, ev) = self.read()?;
            match ev {
                Event::Eof => return Ok(()),
                Event::Text(t) if t.trim().is_empty() => {}
                Event::Comment(_) | Event::PI(_) => {}
                _ => {
                    return Err(SdmError::NotAppMgmtDigest(format!(
                        "content after the root element at byte {} (more than one XML document?)",
                        self.pos()
                    )));
                }
            }
        }
    }

    /// Next child element of the element being read, or `None` at its end tag.
    /// Text between children is ignored (element-only content).
    pub fn next_child(&mut self) -> Result<Option<Elem<'a>>, SdmError> {
        loop {
            let (ns, ev) = self.read()?;
            match ev {
                Event::Start(start) => {
                    return Ok(Some(Elem {
                        ns,
                        empty: false,
                        start,
                    }));
                }
                Event::Empty(start) => {
                    return Ok(Some(Elem {
                        ns,
                        empty: true,
                        start,
                    }));
                }
                Event::End(_) => return Ok(None),
                Event::GeneralRef(r) => self.check_ref(&r)?,
                Event::Eof => return Err(self.unexpected_eof()),
                _ => {}
            }
        }
    }

    /// Skips the rest of `el` (its children and end tag). `el` must be the element most
    /// recently returned and not yet consumed.
    pub fn skip(&mut self, el: &Elem<'_>) -> Result<(), SdmError> {
        if el.empty {
            return Ok(());
        }
        let base = self.depth;
        loop {
            let (_, ev) = self.read()?;
            match ev {
                Event::End(_) if self.depth < base => return Ok(()),
                Event::GeneralRef(r) => self.check_ref(&r)?,
                Event::Eof => return Err(self.unexpected_eof()),
                _ => {}
            }
        }
    }

    /// Reads the text content of `el` (references decoded, line ends normalised to LF, CDATA
    /// included). Child elements, if any, are skipped.
    pub fn text(&mut self, el: &Elem<'_>) -> Result<String, SdmError> {
        let mut out = String::new();
        if el.empty {
            return Ok(out);
        }
        let base = self.depth;
        loop {
            let (_, ev) = self.read()?;
            match ev {
                Event::Text(t) if self.depth == base => out.push_str(&t.xml10_content()),
                Event::CData(t) if self.depth == base => out.push_str(&t.xml10_content()),
                Event::GeneralRef(r) if self.depth == base => {
                    resolve_ref(&r, &mut out, self.pos())?
                }
                Event::GeneralRef(r) => self.check_ref(&r)?,
                Event::End(_) if self.depth < base => return Ok(out),
                Event::Eof => return Err(self.unexpected_eof()),
                _ => {}
            }
        }
    }
}
