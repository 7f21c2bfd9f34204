//! Windows language identifiers (LCID / LANGID) to the names ConfigMgr packages use.
//!
//! Why: package names follow `Vendor_Product_Version_Language`, with the language spelled the way
//! Windows names it without a space before the region, e.g. `English(United States)`. MSIs carry
//! only the number (`ProductLanguage`). This is our own table of the common identifiers; an
//! unknown number is returned as the number itself, so nothing is ever guessed.

/// (LCID, name) pairs, sorted by LCID.
const TABLE: &[(u32, &str)] = &[
    (0, "Neutral"),
    (1025, "Arabic(Saudi Arabia)"),
    (1026, "Bulgarian(Bulgaria)"),
    (1027, "Catalan(Catalan)"),
    (1028, "Chinese(Traditional, Taiwan)"),
    (1029, "Czech(Czech Republic)"),
    (1030, "Danish(Denmark)"),
    (1031, "German(Germany)"),
    (1032, "Greek(Greece)"),
    (1033, "English(United States)"),
    (1034, "Spanish(Spain, Traditional Sort)"),
    (1035, "Finnish(Finland)"),
    (1036, "French(France)"),
    (1037, "Hebrew(Israel)"),
    (1038, "Hungarian(Hungary)"),
    (1039, "Icelandic(Iceland)"),
    (1040, "Italian(Italy)"),
    (1041, "Japanese(Japan)"),
    (1042, "Korean(Korea)"),
    (1043, "Dutch(Netherlands)"),
    (1044, "Norwegian Bokmal(Norway)"),
    (1045, "Polish(Poland)"),
    (1046, "Portuguese(Brazil)"),
    (1048, "Romanian(Romania)"),
    (1049, "Russian(Russia)"),
    (1050, "Croatian(Croatia)"),
    (1051, "Slovak(Slovakia)"),
    (1052, "Albanian(Albania)"),
    (1053, "Swedish(Sweden)"),
    (1054, "Thai(Thailand)"),
    (1055, "Turkish(Turkey)"),
    (1057, "Indonesian(Indonesia)"),
    (1058, "Ukrainian(Ukraine)"),
    (1059, "Belarusian(Belarus)"),
    (1060, "Slovenian(Slovenia)"),
    (1061, "Estonian(Estonia)"),
    (1062, "Latvian(Latvia)"),
    (1063, "Lithuanian(Lithuania)"),
    (1065, "Persian(Iran)"),
    (1066, "Vietnamese(Vietnam)"),
    (1069, "Basque(Basque)"),
    (1071, "Macedonian(North Macedonia)"),
    (1081, "Hindi(India)"),
    (1086, "Malay(Malaysia)"),
    (1087, "Kazakh(Kazakhstan)"),
    (1089, "Swahili(Kenya)"),
    (1110, "Galician(Galician)"),
    (1124, "Filipino(Philippines)"),
    (2052, "Chinese(Simplified, China)"),
    (2055, "German(Switzerland)"),
    (2057, "English(United Kingdom)"),
    (2058, "Spanish(Mexico)"),
    (2060, "French(Belgium)"),
    (2064, "Italian(Switzerland)"),
    (2067, "Dutch(Belgium)"),
    (2068, "Norwegian Nynorsk(Norway)"),
    (2070, "Portuguese(Portugal)"),
    (2074, "Serbian(Latin, Serbia)"),
    (2077, "Swedish(Finland)"),
    (2108, "Irish(Ireland)"),
    (3076, "Chinese(Traditional, Hong Kong SAR)"),
    (3079, "German(Austria)"),
    (3081, "English(Australia)"),
    (3082, "Spanish(Spain)"),
    (3084, "French(Canada)"),
    (3098, "Serbian(Cyrillic, Serbia)"),
    (4100, "Chinese(Simplified, Singapore)"),
    (4103, "German(Luxembourg)"),
    (4105, "English(Canada)"),
    (4108, "French(Switzerland)"),
    (5127, "German(Liechtenstein)"),
    (5129, "English(New Zealand)"),
    (5132, "French(Luxembourg)"),
    (6153, "English(Ireland)"),
    (7177, "English(South Africa)"),
    (11274, "Spanish(Argentina)"),
    (13321, "English(Philippines)"),
    (16393, "English(India)"),
    (17417, "English(Malaysia)"),
    (18441, "English(Singapore)"),
];

/// The name of a language identifier, if it is in the table (`1033` → `English(United States)`).
pub fn language_name(lcid: u32) -> Option<&'static str> {
    TABLE
        .binary_search_by_key(&lcid, |(id, _)| *id)
        .ok()
        .map(|i| TABLE[i].1)
}

/// The name for an MSI `ProductLanguage` value: the first number of a comma-separated list,
/// named from the table, or the number itself when unknown. `None` when no number is there.
pub fn language_from_product_language(value: &str) -> Option<(u32, String)> {
    let first = value.split(',').next()?.trim();
    let lcid: u32 = first.parse().ok()?;
    let name = language_name(lcid).map_or_else(|| lcid.to_string(), str::to_string);
    Some((lcid, name))
}

/// Language codes (`EN`, `de`, `EN-US`, `pt-BR`, as PSADT's `$appLang` holds them) to the LCID
/// of the language they name. A code without a region means the language's main region
/// (`EN` → English (United States), `DE` → German (Germany)), as Windows resolves a neutral
/// culture. Unknown codes give `None`: nothing is guessed.
const CODES: &[(&str, u32)] = &[
    ("ar", 1025),
    ("ar-sa", 1025),
    ("bg", 1026),
    ("bg-bg", 1026),
    ("ca", 1027),
    ("cs", 1029),
    ("cs-cz", 1029),
    ("da", 1030),
    ("da-dk", 1030),
    ("de", 1031),
    ("de-at", 3079),
    ("de-ch", 2055),
    ("de-de", 1031),
    ("el", 1032),
    ("el-gr", 1032),
    ("en", 1033),
    ("en-au", 3081),
    ("en-ca", 4105),
    ("en-gb", 2057),
    ("en-ie", 6153),
    ("en-in", 16393),
    ("en-nz", 5129),
    ("en-us", 1033),
    ("en-za", 7177),
    ("es", 3082),
    ("es-es", 3082),
    ("es-mx", 2058),
    ("et", 1061),
    ("fi", 1035),
    ("fi-fi", 1035),
    ("fr", 1036),
    ("fr-be", 2060),
    ("fr-ca", 3084),
    ("fr-ch", 4108),
    ("fr-fr", 1036),
    ("he", 1037),
    ("hr", 1050),
    ("hu", 1038),
    ("hu-hu", 1038),
    ("it", 1040),
    ("it-ch", 2064),
    ("it-it", 1040),
    ("ja", 1041),
    ("ja-jp", 1041),
    ("ko", 1042),
    ("ko-kr", 1042),
    ("lt", 1063),
    ("lv", 1062),
    ("nb", 1044),
    ("nb-no", 1044),
    ("nl", 1043),
    ("nl-be", 2067),
    ("nl-nl", 1043),
    ("no", 1044),
    ("pl", 1045),
    ("pl-pl", 1045),
    ("pt", 2070),
    ("pt-br", 1046),
    ("pt-pt", 2070),
    ("ro", 1048),
    ("ru", 1049),
    ("ru-ru", 1049),
    ("sk", 1051),
    ("sl", 1060),
    ("sr", 2074),
    ("sv", 1053),
    ("sv-se", 1053),
    ("th", 1054),
    ("tr", 1055),
    ("tr-tr", 1055),
    ("uk", 1058),
    ("uk-ua", 1058),
    ("zh", 2052),
    ("zh-cn", 2052),
    ("zh-hk", 3076),
    ("zh-tw", 1028),
];

/// The LCID and name for a language code such as `EN`, `de-CH` or `PT-BR` (case and `_`
/// versus `-` do not matter). `None` for codes not in the table.
pub fn language_from_code(code: &str) -> Option<(u32, String)> {
    let key = code.trim().to_ascii_lowercase().replace('_', "-");
    let lcid = CODES
        .binary_search_by_key(&key.as_str(), |(c, _)| c)
        .ok()
        .map(|i| CODES[i].1)?;
    Some((lcid, language_name(lcid)?.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        assert!(TABLE.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(CODES.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(CODES.iter().all(|(_, id)| language_name(*id).is_some()));
    }

    #[test]
    fn psadt_language_codes_name_their_language() {
        assert_eq!(
            language_from_code("EN"),
            Some((1033, "English(United States)".to_string()))
        );
        assert_eq!(
            language_from_code("de"),
            Some((1031, "German(Germany)".to_string()))
        );
        assert_eq!(
            language_from_code("EN-GB"),
            Some((2057, "English(United Kingdom)".to_string()))
        );
        assert_eq!(
            language_from_code("pt_BR"),
            Some((1046, "Portuguese(Brazil)".to_string()))
        );
        assert_eq!(language_from_code("xx"), None);
        assert_eq!(language_from_code(""), None);
    }

    #[test]
    fn common_names() {
        assert_eq!(language_name(1033), Some("English(United States)"));
        assert_eq!(language_name(1031), Some("German(Germany)"));
        assert_eq!(language_name(1036), Some("French(France)"));
        assert_eq!(language_name(0), Some("Neutral"));
        assert_eq!(language_name(9999), None);
        assert_eq!(
            language_from_product_language("1033,1031"),
            Some((1033, "English(United States)".to_string()))
        );
        assert_eq!(
            language_from_product_language("9999"),
            Some((9999, "9999".to_string()))
        );
        assert_eq!(language_from_product_language("x"), None);
    }
}
