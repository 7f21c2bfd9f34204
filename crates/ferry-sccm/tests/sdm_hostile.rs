//! Hostile and broken input: refused with a clear error, never a panic.
//!
//! The fuzz-style properties run 256 cases by default; `PROPTEST_CASES=N` sets the count, and
//! `FERRY_LONG_FUZZ=1` runs 50 000 cases (minutes, not seconds).

use std::path::PathBuf;

use ferry_sccm::sdm::{self, MAX_DEPTH, MAX_INPUT_BYTES, SdmError};
use proptest::prelude::*;

const NS: &str = "http://schemas.microsoft.com/SystemCenterConfigurationManager/2009/AppMgmtDigest";

fn minimal(app_inner: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-16"?><AppMgmtDigest xmlns="{NS}"><Application AuthoringScopeId="S" LogicalName="Application_1" Version="1">{app_inner}</Application></AppMgmtDigest>"#
    )
}

#[test]
fn minimal_document_parses() {
    let app = sdm::parse_str(&minimal("<Title ResourceId=\"Res_1\">T</Title>")).expect("parse");
    assert_eq!(app.title, "T");
    assert_eq!(app.revision, 1);
}

#[test]
fn doctype_is_refused() {
    let doc = format!(
        r#"<?xml version="1.0"?><!DOCTYPE AppMgmtDigest><AppMgmtDigest xmlns="{NS}"><Application /></AppMgmtDigest>"#
    );
    let err = sdm::parse_str(&doc).unwrap_err();
    assert_eq!(err, SdmError::DtdRefused);
    assert!(err.to_string().contains("DOCTYPE"), "{err}");
}

#[test]
fn billion_laughs_entity_bomb_is_refused() {
    let mut dtd = String::from("<!DOCTYPE lolz [<!ENTITY lol \"lol\">");
    for i in 1..10 {
        let prev = if i == 1 {
            "lol".to_owned()
        } else {
            format!("lol{}", i - 1)
        };
        dtd.push_str(&format!(
            "<!ENTITY lol{i} \"{}\">",
            format!("&{prev};").repeat(10)
        ));
    }
    dtd.push_str("]>");
    let doc = format!(
        r#"<?xml version="1.0"?>{dtd}<AppMgmtDigest xmlns="{NS}"><Application><Title>&lol9;</Title></Application></AppMgmtDigest>"#
    );
    assert_eq!(sdm::parse_str(&doc), Err(SdmError::DtdRefused));
}

#[test]
fn external_entity_is_refused() {
    let doc = format!(
        r#"<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><AppMgmtDigest xmlns="{NS}"><Application><Title>&xxe;</Title></Application></AppMgmtDigest>"#
    );
    assert_eq!(sdm::parse_str(&doc), Err(SdmError::DtdRefused));
}

#[test]
fn undefined_entities_are_refused_in_text_and_attributes() {
    let err = sdm::parse_str(&minimal("<Title>a &nbsp; b</Title>")).unwrap_err();
    assert!(
        matches!(&err, SdmError::UndefinedEntity { name, .. } if name == "nbsp"),
        "{err}"
    );
    let err = sdm::parse_str(&minimal("<Owners><User Id=\"&xxe;\" /></Owners>")).unwrap_err();
    assert!(
        matches!(&err, SdmError::UndefinedEntity { name, .. } if name == "xxe"),
        "{err}"
    );
    // Also inside elements that are skipped.
    let err = sdm::parse_str(&minimal("<Unknown>&evil;</Unknown>")).unwrap_err();
    assert!(matches!(err, SdmError::UndefinedEntity { .. }), "{err}");
}

#[test]
fn predefined_entities_and_char_refs_are_decoded() {
    let app = sdm::parse_str(&minimal(
        "<Title>&lt;&gt;&amp;&apos;&quot;&#65;&#x42;&#x1F600;&#xD;</Title><Owners><User Id=\"a&amp;b&#x9;c\" /></Owners>",
    ))
    .expect("parse");
    assert_eq!(app.title, "<>&'\"AB\u{1F600}\r");
    assert_eq!(app.owners, ["a&b\tc"]);
}

#[test]
fn char_refs_to_characters_xml_cannot_carry_are_refused() {
    for bad in [
        "&#0;",
        "&#x1;",
        "&#xD800;",
        "&#xFFFE;",
        "&#x110000;",
        "&#xZZ;",
        "&#;",
    ] {
        let err = sdm::parse_str(&minimal(&format!("<Title>{bad}</Title>"))).unwrap_err();
        assert!(
            matches!(
                err,
                SdmError::BadCharRef { .. } | SdmError::Malformed { .. }
            ),
            "{bad}: {err}"
        );
    }
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let big = vec![b' '; MAX_INPUT_BYTES + 1];
    assert!(matches!(sdm::parse(&big), Err(SdmError::TooLarge { .. })));
    let text = " ".repeat(MAX_INPUT_BYTES + 1);
    let err = sdm::parse_str(&text).unwrap_err();
    assert!(matches!(err, SdmError::TooLarge { .. }));
    assert!(err.to_string().contains("limit"), "{err}");
}

#[test]
fn deep_nesting_is_refused() {
    let depth = MAX_DEPTH + 10;
    let inner = format!("{}{}", "<x>".repeat(depth), "</x>".repeat(depth));
    let err = sdm::parse_str(&minimal(&inner)).unwrap_err();
    assert!(matches!(err, SdmError::TooDeep { .. }), "{err}");
    // Deep rule expressions (parsed recursively) hit the same limit, without overflowing.
    let expr = format!(
        "{}{}",
        "<Expression><Operator>And</Operator><Operands>".repeat(depth),
        "</Operands></Expression>".repeat(depth)
    );
    let doc = format!(
        r#"<AppMgmtDigest xmlns="{NS}"><Application /><DeploymentType LogicalName="D"><Requirements><Rule xmlns="http://schemas.microsoft.com/SystemsCenterConfigurationManager/2009/06/14/Rules" id="r">{expr}</Rule></Requirements></DeploymentType></AppMgmtDigest>"#
    );
    assert!(matches!(
        sdm::parse_str(&doc),
        Err(SdmError::TooDeep { .. })
    ));
}

#[test]
fn non_xml_and_empty_input_give_errors() {
    for input in [
        &b""[..],
        b"   \n ",
        b"hello world",
        b"{\"SDMPackageXML\": null}",
        b"<",
        b"<AppMgmtDigest",
        b"\x00\x01\x02\xff",
        b"<?xml version=\"1.0\"?>",
        b"<!-- only a comment -->",
    ] {
        assert!(
            sdm::parse(input).is_err(),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn wrong_root_or_namespace_is_not_an_app_mgmt_digest() {
    let err = sdm::parse_str("<foo />").unwrap_err();
    assert!(matches!(err, SdmError::NotAppMgmtDigest(_)), "{err}");
    // The root namespace is spelt SystemCenter; the SystemsCenter spelling is another namespace.
    let wrong = "<AppMgmtDigest xmlns=\"http://schemas.microsoft.com/SystemsCenterConfigurationManager/2009/AppMgmtDigest\"><Application /></AppMgmtDigest>";
    assert!(matches!(
        sdm::parse_str(wrong),
        Err(SdmError::NotAppMgmtDigest(_))
    ));
    let no_ns = "<AppMgmtDigest><Application /></AppMgmtDigest>";
    assert!(matches!(
        sdm::parse_str(no_ns),
        Err(SdmError::NotAppMgmtDigest(_))
    ));
    let no_app = format!("<AppMgmtDigest xmlns=\"{NS}\" />");
    assert!(matches!(
        sdm::parse_str(&no_app),
        Err(SdmError::NotAppMgmtDigest(_))
    ));
}

#[test]
fn concatenated_documents_are_refused() {
    let one = minimal("");
    let two = format!("{one}\r\n{one}");
    let err = sdm::parse_str(&two).unwrap_err();
    assert!(matches!(err, SdmError::NotAppMgmtDigest(_)), "{err}");
    assert!(
        err.to_string().contains("more than one XML document"),
        "{err}"
    );
    // Trailing whitespace and comments are fine.
    assert!(sdm::parse_str(&format!("{one}\r\n<!-- x -->\n")).is_ok());
}

#[test]
fn mismatched_tags_report_a_byte_offset() {
    let err = sdm::parse_str(&minimal("<Title>x</Titel>")).unwrap_err();
    let SdmError::Malformed { offset, .. } = &err else {
        panic!("expected Malformed, got {err}");
    };
    assert!(*offset > 0);
    assert!(err.to_string().contains("byte"), "{err}");
}

#[test]
fn bad_encodings_give_errors() {
    assert!(matches!(
        sdm::parse(&[0xFF, 0xFE, b'<']),
        Err(SdmError::BadUtf16(_))
    ));
    assert!(matches!(
        sdm::parse(&[0xFF, 0xFE, 0x00, 0xD8, b'<', 0]),
        Err(SdmError::BadUtf16(_))
    ));
    assert!(matches!(
        sdm::parse(b"<a>\xC3\x28</a>"),
        Err(SdmError::BadUtf8 { offset: 3 })
    ));
}

#[test]
fn declaration_encoding_is_ignored_and_bom_in_text_is_accepted() {
    // UTF-8 bytes that claim utf-16 (ConfigMgr's habit), and a BOM char at the start of a str.
    let doc = minimal("<Title>é</Title>");
    assert_eq!(sdm::parse(doc.as_bytes()).expect("parse").title, "é");
    assert_eq!(
        sdm::parse_str(&format!("\u{FEFF}{doc}"))
            .expect("parse")
            .title,
        "é"
    ); // Leading whitespace before the declaration (seen when a string is pasted into a file).
    assert_eq!(
        sdm::parse_str(&format!(" \r\n{doc}")).expect("parse").title,
        "é"
    );
}

#[test]
fn many_deployment_types_are_ordered_in_linear_time() {
    // 20 000 references and definitions: a search per definition would take minutes.
    let n = 20_000;
    let mut doc = format!("<AppMgmtDigest xmlns=\"{NS}\"><Application><DeploymentTypes>");
    for i in (0..n).rev() {
        doc.push_str(&format!("<DeploymentType LogicalName=\"D{i}\" />"));
    }
    doc.push_str("</DeploymentTypes></Application>");
    for i in 0..n {
        doc.push_str(&format!("<DeploymentType LogicalName=\"D{i}\" />"));
    }
    doc.push_str("</AppMgmtDigest>");
    let start = std::time::Instant::now();
    let app = sdm::parse_str(&doc).expect("parse");
    assert_eq!(app.deployment_types.len(), n);
    assert_eq!(app.deployment_types[0].logical_name, format!("D{}", n - 1));
    assert!(start.elapsed().as_secs() < 20, "{:?}", start.elapsed());
}

#[test]
fn prefixed_namespaces_resolve_like_default_ones() {
    let rules = "http://schemas.microsoft.com/SystemsCenterConfigurationManager/2009/06/14/Rules";
    let default_ns = format!(
        r#"<AppMgmtDigest xmlns="{NS}"><Application LogicalName="A"><Title>T</Title></Application><DeploymentType LogicalName="D"><Requirements><Rule xmlns="{rules}" id="r"><Expression><Operator>Equals</Operator><Operands><ConstantValue Value="1" DataType="Int64" /></Operands></Expression></Rule></Requirements></DeploymentType></AppMgmtDigest>"#
    );
    let prefixed = format!(
        r#"<a:AppMgmtDigest xmlns:a="{NS}" xmlns:r="{rules}"><a:Application LogicalName="A"><a:Title>T</a:Title></a:Application><a:DeploymentType LogicalName="D"><a:Requirements><r:Rule id="r"><r:Expression><r:Operator>Equals</r:Operator><r:Operands><r:ConstantValue Value="1" DataType="Int64" /></r:Operands></r:Expression></r:Rule></a:Requirements></a:DeploymentType></a:AppMgmtDigest>"#
    );
    let a = sdm::parse_str(&default_ns).expect("default");
    assert_eq!(a.deployment_types[0].requirements.len(), 1);
    assert_eq!(sdm::parse_str(&prefixed).expect("prefixed"), a);
    // An element in another namespace is not ours, even with the right local name.
    let foreign = format!(
        r#"<AppMgmtDigest xmlns="{NS}"><Application LogicalName="A"><Title xmlns="urn:other">X</Title><Title>T</Title></Application></AppMgmtDigest>"#
    );
    assert_eq!(sdm::parse_str(&foreign).expect("foreign").title, "T");
    // Declarations are scoped: inside <x xmlns=""> nothing is ours; after it, ours again.
    let undeclared = format!(
        r#"<AppMgmtDigest xmlns="{NS}"><Application LogicalName="A"><x xmlns=""><Title>X</Title></x><Publisher>P</Publisher></Application></AppMgmtDigest>"#
    );
    let u = sdm::parse_str(&undeclared).expect("undeclared");
    assert_eq!((u.title.as_str(), u.publisher.as_str()), ("", "P"));
}

#[test]
fn too_many_namespace_declarations_are_refused() {
    let decls: String = (0..500)
        .map(|i| format!(" xmlns:p{i}=\"urn:{i}\""))
        .collect();
    let doc = format!("<AppMgmtDigest xmlns=\"{NS}\"{decls}><Application /></AppMgmtDigest>");
    let err = sdm::parse_str(&doc).unwrap_err();
    assert!(err.to_string().contains("namespace declarations"), "{err}");
}

// ---- never panic ----

fn seed_document() -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(
        "../../../shared/reference/sdmpackagexml/19-vmware-adobe-standard-two-script-dts.xml",
    );
    std::fs::read(path).unwrap_or_else(|_| minimal("<Title>fallback seed</Title>").into_bytes())
}

#[test]
fn every_truncation_of_a_real_document_is_an_error_not_a_panic() {
    let doc = seed_document();
    let text = String::from_utf8_lossy(&doc).into_owned();
    let end = text.rfind("</AppMgmtDigest>").expect("root end");
    for cut in (0..end).step_by(7) {
        let Some(prefix) = text.get(..cut) else {
            continue;
        };
        assert!(
            sdm::parse_str(prefix).is_err(),
            "prefix of {cut} bytes parsed"
        );
    }
}

fn cases() -> u32 {
    if let Some(n) = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    if std::env::var("FERRY_LONG_FUZZ").is_ok_and(|v| v == "1") {
        50_000
    } else {
        256
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = sdm::parse(&bytes);
    }

    #[test]
    fn arbitrary_markup_soup_never_panics(parts in prop::collection::vec(prop::sample::select(vec![
        "<", ">", "</", "/>", "<AppMgmtDigest xmlns=\"http://schemas.microsoft.com/SystemCenterConfigurationManager/2009/AppMgmtDigest\">",
        "<Application Version=\"1\">", "</Application>", "<DeploymentType>", "</DeploymentType>", "<Installer>",
        "<CustomData>", "<EnhancedDetectionMethod>", "<Arg Name=\"MethodBody\">", "&lt;", "&amp;", "&#x", ";",
        "<Rule xmlns=\"http://schemas.microsoft.com/SystemsCenterConfigurationManager/2009/06/14/Rules\">",
        "<Expression>", "<Operands>", "\"", "'", "=", " ", "x", "<!--", "-->", "<![CDATA[", "]]>", "<?xml ?>",
        "<!DOCTYPE", "\u{FEFF}", "é",
    ]), 0..64)) {
        let _ = sdm::parse_str(&parts.concat());
    }

    #[test]
    fn mutated_real_document_never_panics(
        cut in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
    ) {
        let mut doc = seed_document();
        for (at, byte) in edits {
            let i = at.index(doc.len());
            doc[i] = byte;
        }
        let len = cut.index(doc.len() + 1);
        doc.truncate(len);
        let _ = sdm::parse(&doc);
    }
}
