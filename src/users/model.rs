//! The user model. Input is parsed once into types that can only hold valid values ("parse,
//! don't validate"); stores and handlers then never re-check a name or an email.

use std::{collections::BTreeMap, fmt};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
use utoipa::ToSchema;

use crate::timestamp;

/// A user id: new ids are UUIDs; ids migrated from the previous service are kept when they
/// are URL-safe, so old links keep working.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    pub const MAX_LEN: usize = 64;

    pub fn generate() -> Self {
        // From the thread-local CSPRNG: no `getrandom` system call per created user.
        Self(uuid::Builder::from_random_bytes(rand::random()).into_uuid().to_string())
    }

    /// Ids are 1–64 URL-unreserved characters, so they need no escaping in paths or keys.
    pub fn parse(raw: &str) -> Option<Self> {
        // `.` and `..` are path segments with a meaning of their own.
        let valid = (1..=Self::MAX_LEN).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
            && raw.bytes().any(|b| b != b'.');
        valid.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UserId {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw).ok_or_else(|| format!("invalid user id {raw:?}"))
    }
}

impl From<UserId> for String {
    fn from(id: UserId) -> String {
        id.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A display name: trimmed, 1–100 characters, no control, format (Cf) or other invisible
/// characters (except a zero-width joiner or non-joiner between two visible characters), and
/// at least one character that shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserName(String);

impl UserName {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("must not be empty".into());
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(format!("must be at most {} characters", Self::MAX_CHARS));
        }
        if trimmed.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        if !hides_nothing(trimmed) {
            return Err("must not contain invisible or formatting characters".into());
        }
        if !trimmed.chars().any(shows) {
            return Err("must contain a visible character".into());
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// A name read back from the store: validated when written, or kept as the previous
    /// service stored it (migration never drops or rewrites a record).
    pub fn stored(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address as the user typed it (trimmed); compared case-insensitively through
/// [`Email::key`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Email(String);

impl Email {
    /// RFC 5321's limit on a forward path.
    pub const MAX_LEN: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.len() > Self::MAX_LEN {
            return Err(format!("must be at most {} bytes", Self::MAX_LEN));
        }
        let parsed: email_address::EmailAddress =
            trimmed.parse().map_err(|_| "is not a valid email address".to_owned())?;
        // The grammar allows `a@b`, `a@b_c` and address literals; a deliverable address needs
        // a DNS host name with at least two labels.
        if !is_host_name(parsed.domain()) {
            return Err("is not a valid email address".into());
        }
        // Invisible characters would make `a\u{200b}b@x.org` a second account beside `ab@x.org`.
        if trimmed
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || is_invisible(c))
        {
            return Err("is not a valid email address".into());
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// An email read back from the store (see [`UserName::stored`]).
    pub fn stored(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The uniqueness key: two emails differing only in letter case are the same user.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

/// Characters that change how text around them is shown, or show as nothing, and so let two
/// strings that look the same differ: Unicode's format characters (general category Cf: soft
/// hyphen, zero-width space and joiners, bidi controls such as U+202E, BOM, tags), the line
/// and paragraph separators, and the fillers and blanks that render empty (Hangul fillers,
/// combining grapheme joiner, Khmer inherent vowels, Mongolian selectors, braille blank).
pub fn is_invisible(c: char) -> bool {
    c.general_category() == GeneralCategory::Format
        || matches!(
            c,
            '\u{034F}'
                | '\u{115F}'..='\u{1160}'
                | '\u{17B4}'..='\u{17B5}'
                | '\u{180B}'..='\u{180D}'
                | '\u{180F}'
                | '\u{2028}'..='\u{2029}'
                | '\u{2800}'
                | '\u{3164}'
                | '\u{FFA0}'
        )
}

/// Zero-width non-joiner and joiner: format characters that some scripts need inside words
/// (Persian and Indic names: ZWNJ keeps two letters apart; ZWJ builds emoji sequences). A
/// name may hold them between two characters that show; anywhere else they only hide.
fn is_joiner(c: char) -> bool {
    matches!(c, '\u{200C}' | '\u{200D}')
}

/// Whether every invisible character of `name` is a joiner between two characters that show.
fn hides_nothing(name: &str) -> bool {
    let chars: Vec<char> = name.chars().collect();
    chars.iter().enumerate().all(|(at, &c)| {
        if !is_invisible(c) {
            return true;
        }
        is_joiner(c) && at > 0 && chars.get(at + 1).is_some_and(|&next| shows(next)) && shows(chars[at - 1])
    })
}

/// Whether `c` shows on its own: not a space, and not a mark or selector that only modifies
/// the character before it (a name of only combining accents displays as nothing).
fn shows(c: char) -> bool {
    !c.is_whitespace()
        && !is_invisible(c)
        && !matches!(
            c,
            '\u{0300}'..='\u{036F}'
                | '\u{1AB0}'..='\u{1AFF}'
                | '\u{1DC0}'..='\u{1DFF}'
                | '\u{20D0}'..='\u{20FF}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FE20}'..='\u{FE2F}'
                | '\u{E0100}'..='\u{E01EF}'
        )
}

/// Letters, digits and inner hyphens per label (RFC 1123); the top-level label is letters or
/// an internationalised `xn--` label.
fn is_host_name(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |label: &&str| {
        (1..=63).contains(&label.len())
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    let Some(top) = labels.last() else { return false };
    let top_ok = (top.len() >= 2 && top.bytes().all(|b| b.is_ascii_alphabetic()))
        || top.get(..4).is_some_and(|prefix| prefix.eq_ignore_ascii_case("xn--"));
    labels.len() >= 2 && labels.iter().all(label_ok) && top_ok
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    #[default]
    User,
}

impl Role {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "admin" => Some(Role::Admin),
            "user" => Some(Role::User),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }
}

/// A stored user, as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[schema(value_type = String, example = "6f1c3e2a-8b1d-4c47-9a43-1f0a3b8e2c11")]
    pub id: UserId,
    // No length or format constraints here: records migrated from the previous service keep
    // what it stored, and responses must match the schema. Requests carry the constraints.
    #[schema(value_type = String, example = "Ada Lovelace")]
    pub name: UserName,
    #[schema(value_type = String, example = "ada@example.com")]
    pub email: Email,
    pub role: Role,
    #[serde(serialize_with = "timestamp::serialize")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-29T05:35:25.640Z")]
    pub created_at: OffsetDateTime,
    #[serde(serialize_with = "timestamp::serialize")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-29T05:35:25.640Z")]
    pub updated_at: OffsetDateTime,
}

impl User {
    /// A new user created now. Timestamps are cut to milliseconds: the index score is
    /// milliseconds, and a cursor must compare equal to the stored value.
    pub fn create(new: NewUser, now: OffsetDateTime) -> Self {
        let now = timestamp::truncate_to_millis(now);
        Self {
            id: UserId::generate(),
            name: new.name,
            email: new.email,
            role: new.role,
            created_at: now,
            updated_at: now,
        }
    }

    pub fn created_millis(&self) -> i64 {
        timestamp::unix_millis(self.created_at)
    }

    pub fn apply(&mut self, patch: &UserPatch, now: OffsetDateTime) {
        if let Some(name) = &patch.name {
            self.name = name.clone();
        }
        if let Some(email) = &patch.email {
            self.email = email.clone();
        }
        if let Some(role) = patch.role {
            self.role = role;
        }
        self.updated_at = timestamp::truncate_to_millis(now);
    }
}

/// A validated create request.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub name: UserName,
    pub email: Email,
    pub role: Role,
}

/// A validated partial update; at least one field is set.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub name: Option<UserName>,
    pub email: Option<Email>,
    pub role: Option<Role>,
}

/// The body of `POST /users`, as documented (parsing goes through [`NewUser::parse`], which
/// reports every bad field at once; these types only describe the contract).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct CreateUserRequest {
    /// Trimmed; 1–100 characters. Rejected (422): control characters, Unicode format
    /// characters (Cf: zero-width space, BOM, bidi overrides such as U+202E, soft hyphen),
    /// line separators, invisible fillers (Hangul fillers, braille blank), and names with no
    /// visible character (only spaces, combining marks or variation selectors). A zero-width
    /// non-joiner or joiner (U+200C, U+200D) is accepted between two visible characters, as
    /// Persian and Indic names and emoji sequences need it, and rejected anywhere else.
    #[schema(example = "Ada Lovelace", min_length = 1, max_length = 100, pattern = r"\S")]
    name: String,
    /// Unique, compared case-insensitively. No spaces, control, format (Cf) or other
    /// invisible characters; the domain is a DNS host name with at least two labels.
    #[schema(
        example = "ada@example.com",
        format = "email",
        max_length = 254,
        pattern = r"^[^@\s]+@([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)+([A-Za-z]{2,}|[Xx][Nn]--[A-Za-z0-9-]+)$"
    )]
    email: String,
    /// Defaults to `user`.
    role: Option<Role>,
}

/// The body of `PATCH /users/{id}`: any non-empty subset of the fields.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
#[allow(dead_code)]
pub struct UpdateUserRequest {
    #[schema(example = "Ada King", min_length = 1, max_length = 100, pattern = r"\S")]
    name: Option<String>,
    #[schema(
        example = "ada.king@example.com",
        format = "email",
        max_length = 254,
        pattern = r"^[^@\s]+@([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)+([A-Za-z]{2,}|[Xx][Nn]--[A-Za-z0-9-]+)$"
    )]
    email: Option<String>,
    role: Option<Role>,
}

/// Why a request body is not a valid user or patch: field name -> what is wrong with it. The
/// web layer turns it into its 422 response; the domain knows nothing of HTTP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvalidFields(BTreeMap<String, String>);

impl InvalidFields {
    fn one(field: &str, message: &str) -> Self {
        Self(BTreeMap::from([(field.to_owned(), message.to_owned())]))
    }

    fn insert(&mut self, field: String, message: String) {
        self.0.insert(field, message);
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What is wrong with `field`, if anything.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }

    pub fn into_map(self) -> BTreeMap<String, String> {
        self.0
    }
}

const FIELDS: [&str; 3] = ["name", "email", "role"];

/// Collects every problem in one pass, so a client sees all of them at once.
struct Fields<'a> {
    object: &'a Map<String, Value>,
    errors: InvalidFields,
}

impl<'a> Fields<'a> {
    fn of(body: &'a Value) -> Result<Self, InvalidFields> {
        let Some(object) = body.as_object() else {
            return Err(InvalidFields::one("body", "must be a JSON object"));
        };
        let mut errors = InvalidFields::default();
        for key in object.keys().filter(|k| !FIELDS.contains(&k.as_str())) {
            errors.insert(truncated(key), "unknown field".to_owned());
        }
        Ok(Self { object, errors })
    }

    fn parse<T>(&mut self, field: &str, required: bool, parse: impl FnOnce(&str) -> Result<T, String>) -> Option<T> {
        // `null` means "not given", as the documented schema (optional, nullable) says.
        match self.object.get(field).filter(|value| !value.is_null()) {
            None if required => {
                self.errors.insert(field.to_owned(), "is required".to_owned());
                None
            }
            None => None,
            Some(Value::String(raw)) => match parse(raw) {
                Ok(value) => Some(value),
                Err(message) => {
                    self.errors.insert(field.to_owned(), message);
                    None
                }
            },
            Some(_) => {
                self.errors.insert(field.to_owned(), "must be a string".to_owned());
                None
            }
        }
    }

    fn finish<T>(self, value: impl FnOnce() -> Option<T>) -> Result<T, InvalidFields> {
        if !self.errors.is_empty() {
            return Err(self.errors);
        }
        value().ok_or(self.errors)
    }
}

fn parse_role(raw: &str) -> Result<Role, String> {
    Role::parse(raw).ok_or_else(|| "must be \"admin\" or \"user\"".to_owned())
}

/// Unknown keys are echoed back in errors; a bound keeps a hostile key from bloating them.
fn truncated(key: &str) -> String {
    key.chars().take(64).collect()
}

impl NewUser {
    pub fn parse(body: &Value) -> Result<Self, InvalidFields> {
        let mut fields = Fields::of(body)?;
        let name = fields.parse("name", true, UserName::parse);
        let email = fields.parse("email", true, Email::parse);
        let role = fields.parse("role", false, parse_role).unwrap_or_default();
        fields.finish(|| {
            Some(NewUser {
                name: name?,
                email: email?,
                role,
            })
        })
    }
}

impl UserPatch {
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.email.is_none() && self.role.is_none()
    }

    pub fn parse(body: &Value) -> Result<Self, InvalidFields> {
        let mut fields = Fields::of(body)?;
        let patch = UserPatch {
            name: fields.parse("name", false, UserName::parse),
            email: fields.parse("email", false, Email::parse),
            role: fields.parse("role", false, parse_role),
        };
        if patch.is_empty() && fields.errors.is_empty() {
            fields.errors.insert(
                "body".to_owned(),
                "must set at least one of name, email, role".to_owned(),
            );
        }
        fields.finish(|| Some(patch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_are_trimmed_and_bounded_in_characters() {
        assert_eq!(UserName::parse("  Ada  ").expect("valid").as_str(), "Ada");
        assert!(UserName::parse("   ").is_err());
        assert!(UserName::parse(&"é".repeat(100)).is_ok(), "100 two-byte characters fit");
        assert!(UserName::parse(&"a".repeat(101)).is_err());
        assert!(UserName::parse("a\u{0}b").is_err());
    }

    #[test]
    fn names_and_emails_reject_invisible_and_formatting_characters() {
        for hidden in [
            '\u{200B}',
            '\u{FEFF}',
            '\u{202E}',
            '\u{3164}',
            '\u{00AD}',
            '\u{2060}',
            '\u{E0041}',
        ] {
            assert!(UserName::parse(&format!("Ada{hidden}Lovelace")).is_err(), "{hidden:?}");
            assert!(
                Email::parse(&format!("case{hidden}1@example.com")).is_err(),
                "{hidden:?}"
            );
        }
        for empty in [
            "\u{200B}\u{200B}",
            "\u{3164}",
            "\u{0301}\u{0301}",
            "\u{FE0F}",
            "\u{2800}",
        ] {
            assert!(UserName::parse(empty).is_err(), "{empty:?}");
        }
        for visible in ["José", "Zoë\u{0301}", "李小龍", "❤\u{FE0F}", "O'Brien-Smith"] {
            assert!(UserName::parse(visible).is_ok(), "{visible:?}");
        }
    }

    #[test]
    fn joiners_are_part_of_a_name_only_between_visible_characters() {
        // Persian "Mohammad-Reza" keeps its two parts apart with a ZWNJ; a family emoji is
        // three people joined by ZWJ.
        for joined in [
            "\u{645}\u{62D}\u{645}\u{62F}\u{200C}\u{631}\u{636}\u{627}",
            "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}",
        ] {
            assert!(UserName::parse(joined).is_ok(), "{joined:?}");
        }
        for hiding in [
            "\u{200C}Ada",
            "Ada\u{200D}",
            "Ada\u{200C}\u{200C}Lovelace",
            "Ada\u{200D} Lovelace",
            "\u{200D}",
        ] {
            assert!(UserName::parse(hiding).is_err(), "{hiding:?}");
        }
        assert!(Email::parse("ada\u{200C}1@example.com").is_err());
    }

    #[test]
    fn emails_need_a_real_shape_and_compare_case_insensitively() {
        for valid in [
            "ada@example.com",
            " Ada.Lovelace+tag@Example.co.uk ",
            "a@b.xn--p1ai",
            "x@sub-domain.example.org",
        ] {
            assert!(Email::parse(valid).is_ok(), "{valid}");
        }
        for invalid in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "ada@example.com.",
            "a@b_c.com",
            "a@b.ab--cd",
            "a@-b.com",
            "a@b.c",
            "a@[127.0.0.1]",
        ] {
            assert!(Email::parse(invalid).is_err(), "{invalid}");
        }
        assert_eq!(Email::parse("Ada@Example.COM").expect("valid").key(), "ada@example.com");
    }

    #[test]
    fn create_reports_every_bad_field_at_once() {
        let errors = NewUser::parse(&json!({"email": "nope", "role": "root", "extra": 1})).unwrap_err();
        assert_eq!(errors.get("name"), Some("is required"));
        assert_eq!(errors.get("email"), Some("is not a valid email address"));
        assert!(errors.get("role").is_some_and(|m| m.contains("admin")));
        assert_eq!(errors.get("extra"), Some("unknown field"));
        let user = NewUser::parse(&json!({"name": " Ada ", "email": "ada@example.com"})).expect("valid");
        assert_eq!(user.role, Role::User);
    }

    #[test]
    fn patch_needs_at_least_one_field() {
        assert!(UserPatch::parse(&json!({})).unwrap_err().get("body").is_some());
        assert!(UserPatch::parse(&json!([])).unwrap_err().get("body").is_some());
        let patch = UserPatch::parse(&json!({"role": "admin"})).expect("valid");
        assert_eq!(patch.role, Some(Role::Admin));
        let patch = UserPatch::parse(&json!({"role": "admin", "name": null})).expect("null means not given");
        assert!(patch.name.is_none());
        assert!(
            UserPatch::parse(&json!({"role": null}))
                .unwrap_err()
                .get("body")
                .is_some()
        );
        let user = NewUser::parse(&json!({"name": "Ada", "email": "ada@example.com", "role": null})).expect("valid");
        assert_eq!(user.role, Role::User);
        assert_eq!(
            NewUser::parse(&json!({"name": null, "email": "ada@example.com"}))
                .unwrap_err()
                .get("name"),
            Some("is required")
        );
    }

    #[test]
    fn ids_are_url_safe() {
        assert!(UserId::parse("legacy_42").is_some());
        assert!(UserId::parse("a/b").is_none());
        assert!(UserId::parse("").is_none());
        assert!(UserId::parse("..").is_none());
        assert!(UserId::parse(&"x".repeat(65)).is_none());
    }
}
