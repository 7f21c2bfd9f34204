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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        assert!(TABLE.windows(2).all(|w| w[0].0 < w[1].0));
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
