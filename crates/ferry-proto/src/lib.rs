//! Ferry's wire types, defined once and shared by the hub, the connector and the CLI.
//!
//! Everything here is plain data with serde derives: no I/O, no HTTP, no storage. Every
//! request body the hub accepts is `deny_unknown_fields`, so a typo in a client is a 400
//! that names the field instead of a silently ignored option.
//!
//! Versioning: every route lives under [`API_PREFIX`]. Additive changes (a new optional field
//! in a response) keep the version; anything a v1 client could misread gets a new prefix.

pub mod agent;
pub mod backoff;
pub mod connector;
pub mod diagnostics;
mod error;
pub mod glob;
pub mod helpdesk;
pub mod identity;
pub mod inventory;
pub mod job;
pub mod ops;
pub mod package;
pub mod push;

pub use error::{ApiError, ErrorCode};

/// The prefix of every versioned API route.
pub const API_PREFIX: &str = "/api/v1";

/// Timestamps travel as RFC 3339 strings (UTC).
pub type Timestamp = time::OffsetDateTime;

/// A proxy or hub URL with its password replaced by `***`, for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// Distinguishes "field absent" (keep) from "field null" (clear) in PATCH bodies:
/// `#[serde(default, skip_serializing_if = "Option::is_none", with = "crate::double_option")] field: Option<Option<T>>`.
pub(crate) mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(
        v: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod double_option_tests {
    use crate::identity::{Role, UpdateTechnician};

    #[test]
    fn an_absent_field_is_not_sent_as_null() {
        let update = UpdateTechnician {
            role: Some(Role::Operator),
            ..Default::default()
        };
        let json = serde_json::to_value(&update).unwrap();
        assert_eq!(json["role"], "operator");
        assert!(json.get("email").is_none(), "{json}");
    }

    #[test]
    fn null_clears_and_absence_keeps() {
        let cleared: UpdateTechnician = serde_json::from_str(r#"{"email": null}"#).unwrap();
        assert_eq!(cleared.email, Some(None));
        let kept: UpdateTechnician = serde_json::from_str("{}").unwrap();
        assert_eq!(kept.email, None);
        let round = serde_json::to_value(&cleared).unwrap();
        assert_eq!(round.get("email"), Some(&serde_json::Value::Null));
    }
}
