//! The user model. Input is parsed once into types that can only hold valid values ("parse,
//! don't validate"); stores and handlers then never re-check a name or an email.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::http::error::FieldErrors;

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

/// A display name: trimmed, 1–100 characters, no control characters.
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
        if trimmed.chars().any(|c| c.is_control() || c.is_whitespace()) {
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
    #[serde(serialize_with = "serialize_timestamp")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-29T05:35:25.640Z")]
    pub created_at: OffsetDateTime,
    #[serde(serialize_with = "serialize_timestamp")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-29T05:35:25.640Z")]
    pub updated_at: OffsetDateTime,
}

impl User {
    /// A new user created now. Timestamps are cut to milliseconds: the index score is
    /// milliseconds, and a cursor must compare equal to the stored value.
    pub fn create(new: NewUser, now: OffsetDateTime) -> Self {
        let now = truncate_to_millis(now);
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
        unix_millis(self.created_at)
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
        self.updated_at = truncate_to_millis(now);
    }
}

/// RFC 3339 in UTC with exactly three fractional digits, so timestamps have one width and
/// sort as strings (plain RFC 3339 formatting drops trailing zeros).
const TIMESTAMP: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

pub fn format_timestamp(at: OffsetDateTime) -> String {
    match timestamp_bytes(at) {
        // ASCII digits and punctuation only.
        Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        None => at.to_offset(time::UtcOffset::UTC).format(TIMESTAMP).unwrap_or_default(),
    }
}

/// `TIMESTAMP` written by hand into a stack buffer, for years 0–9999 (the only ones the
/// service makes). `time`'s interpreter of format descriptions costs ~2,500 instructions
/// per timestamp; this ~100, and needs no allocation when serialising.
fn timestamp_bytes(at: OffsetDateTime) -> Option<[u8; 24]> {
    let at = at.to_offset(time::UtcOffset::UTC);
    let year = u32::try_from(at.year()).ok().filter(|y| *y <= 9999)?;
    let mut out = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut value: u32| {
        for slot in out[at..at + width].iter_mut().rev() {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, u32::from(u8::from(at.month())));
    put(8, 2, u32::from(at.day()));
    put(11, 2, u32::from(at.hour()));
    put(14, 2, u32::from(at.minute()));
    put(17, 2, u32::from(at.second()));
    put(20, 3, u32::from(at.millisecond()));
    Some(out)
}

/// Parses what [`format_timestamp`] writes, fast; anything else (another offset, other
/// precision) goes through the general RFC 3339 parser.
pub fn parse_timestamp(raw: &str) -> Option<OffsetDateTime> {
    fn fast(b: &[u8]) -> Option<OffsetDateTime> {
        if b.len() != 24
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b'T'
            || b[13] != b':'
            || b[16] != b':'
            || b[19] != b'.'
            || b[23] != b'Z'
        {
            return None;
        }
        let num = |from: usize, to: usize| -> Option<u32> {
            b[from..to].iter().try_fold(0u32, |acc, &d| {
                d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
            })
        };
        let month = time::Month::try_from(u8::try_from(num(5, 7)?).ok()?).ok()?;
        let date =
            time::Date::from_calendar_date(i32::try_from(num(0, 4)?).ok()?, month, u8::try_from(num(8, 10)?).ok()?)
                .ok()?;
        let time = time::Time::from_hms_milli(
            u8::try_from(num(11, 13)?).ok()?,
            u8::try_from(num(14, 16)?).ok()?,
            u8::try_from(num(17, 19)?).ok()?,
            u16::try_from(num(20, 23)?).ok()?,
        )
        .ok()?;
        Some(time::PrimitiveDateTime::new(date, time).assume_utc())
    }
    fast(raw.as_bytes()).or_else(|| OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339).ok())
}

fn serialize_timestamp<S: serde::Serializer>(at: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    match timestamp_bytes(*at) {
        Some(bytes) => serializer.serialize_str(std::str::from_utf8(&bytes).map_err(serde::ser::Error::custom)?),
        None => serializer.serialize_str(&format_timestamp(*at)),
    }
}

pub fn truncate_to_millis(at: OffsetDateTime) -> OffsetDateTime {
    let nanos = at.nanosecond();
    at.replace_nanosecond(nanos - nanos % 1_000_000).unwrap_or(at)
}

pub fn unix_millis(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
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
    /// Trimmed; 1–100 characters, not only spaces.
    #[schema(example = "Ada Lovelace", min_length = 1, max_length = 100, pattern = r"\S")]
    name: String,
    /// Unique, compared case-insensitively.
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

const FIELDS: [&str; 3] = ["name", "email", "role"];

/// Collects every problem in one pass, so a client sees all of them at once.
struct Fields<'a> {
    object: &'a Map<String, Value>,
    errors: FieldErrors,
}

impl<'a> Fields<'a> {
    fn of(body: &'a Value) -> Result<Self, FieldErrors> {
        let Some(object) = body.as_object() else {
            return Err(FieldErrors::from([(
                "body".to_owned(),
                "must be a JSON object".to_owned(),
            )]));
        };
        let mut errors = FieldErrors::new();
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

    fn finish<T>(self, value: impl FnOnce() -> Option<T>) -> Result<T, FieldErrors> {
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
    pub fn parse(body: &Value) -> Result<Self, FieldErrors> {
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

    pub fn parse(body: &Value) -> Result<Self, FieldErrors> {
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
    fn fast_timestamps_match_the_format_description() {
        // Every millisecond offset within a few spread-out days, plus the edges of the range.
        let mut instants: Vec<OffsetDateTime> = [0_i64, 951_782_400_000, 1_795_930_838_607, 253_402_300_799_999]
            .iter()
            .flat_map(|base| (0..2_000).map(move |step| base + step * 86_399_999 % 1_000_000_007))
            .filter_map(|millis| OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).ok())
            .collect();
        instants.push(OffsetDateTime::UNIX_EPOCH);
        for at in instants {
            let slow = at.format(TIMESTAMP).expect("formats");
            assert_eq!(format_timestamp(at), slow);
            assert_eq!(parse_timestamp(&slow), Some(at), "{slow}");
        }
        // Other RFC 3339 shapes still parse; garbage does not.
        assert_eq!(
            parse_timestamp("2024-02-29T10:00:00Z"),
            OffsetDateTime::parse("2024-02-29T10:00:00Z", &time::format_description::well_known::Rfc3339).ok()
        );
        assert!(parse_timestamp("2023-02-29T10:00:00.000Z").is_none());
        assert!(parse_timestamp("2024-13-01T10:00:00.000Z").is_none());
        assert!(parse_timestamp("2024-01-01T10:00:00.0a0Z").is_none());
    }

    #[test]
    fn names_are_trimmed_and_bounded_in_characters() {
        assert_eq!(UserName::parse("  Ada  ").expect("valid").as_str(), "Ada");
        assert!(UserName::parse("   ").is_err());
        assert!(UserName::parse(&"é".repeat(100)).is_ok(), "100 two-byte characters fit");
        assert!(UserName::parse(&"a".repeat(101)).is_err());
        assert!(UserName::parse("a\u{0}b").is_err());
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
        assert_eq!(errors["name"], "is required");
        assert_eq!(errors["email"], "is not a valid email address");
        assert!(errors["role"].contains("admin"));
        assert_eq!(errors["extra"], "unknown field");
        let user = NewUser::parse(&json!({"name": " Ada ", "email": "ada@example.com"})).expect("valid");
        assert_eq!(user.role, Role::User);
    }

    #[test]
    fn patch_needs_at_least_one_field() {
        assert!(UserPatch::parse(&json!({})).unwrap_err().contains_key("body"));
        assert!(UserPatch::parse(&json!([])).unwrap_err().contains_key("body"));
        let patch = UserPatch::parse(&json!({"role": "admin"})).expect("valid");
        assert_eq!(patch.role, Some(Role::Admin));
        let patch = UserPatch::parse(&json!({"role": "admin", "name": null})).expect("null means not given");
        assert!(patch.name.is_none());
        assert!(
            UserPatch::parse(&json!({"role": null}))
                .unwrap_err()
                .contains_key("body")
        );
        let user = NewUser::parse(&json!({"name": "Ada", "email": "ada@example.com", "role": null})).expect("valid");
        assert_eq!(user.role, Role::User);
        assert_eq!(
            NewUser::parse(&json!({"name": null, "email": "ada@example.com"})).unwrap_err()["name"],
            "is required"
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
