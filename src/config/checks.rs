//! What every section of the configuration checks the same way: an error
//! that names its field, a range, a "value or `_file`" pair, a file read, a
//! URL, a set of audiences. A message never repeats a secret.

use crate::domain::{Audience, AudienceScope};
use secrecy::SecretString;
use std::collections::HashSet;
use std::fmt;
use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::Arc;

/// An invalid configuration: the field (dotted, as in the file, or the
/// environment variable) and what is wrong with it.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ConfigError {}

pub(crate) fn err(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        message: message.into(),
    }
}

/// `value`, or `default` when unset, if it lies in `range`.
pub(crate) fn in_range<T: PartialOrd + fmt::Display + Copy>(
    field: &str,
    value: Option<T>,
    default: T,
    range: RangeInclusive<T>,
) -> Result<T, ConfigError> {
    let v = value.unwrap_or(default);
    if range.contains(&v) {
        Ok(v)
    } else {
        Err(err(
            field,
            format!("must be between {} and {}", range.start(), range.end()),
        ))
    }
}

/// The contents of a file (a mounted Kubernetes secret, say), trimmed.
pub(crate) fn read_file(field: &str, path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| err(field, format!("cannot read {}: {e}", path.display())))
}

/// The one rule for every `<name>` / `<name>_file` pair: at most one of the
/// two, and a file is read at start. `field` is the dotted name of the value
/// (`store.redis_url`); the file's is `<field>_file`.
pub(crate) fn value_or_file(
    field: &str,
    value: Option<String>,
    file: Option<&Path>,
) -> Result<Option<SecretString>, ConfigError> {
    let file_field = format!("{field}_file");
    match (value, file) {
        (Some(_), Some(_)) => Err(err(field, format!("set {field} or {file_field}, not both"))),
        (Some(v), None) => Ok(Some(v.into())),
        (None, Some(p)) => Ok(Some(read_file(&file_field, p)?.into())),
        (None, None) => Ok(None),
    }
}

/// Like [`value_or_file`], for a secret that must be set.
pub(crate) fn required_value_or_file(
    field: &str,
    value: Option<String>,
    file: Option<&Path>,
) -> Result<SecretString, ConfigError> {
    value_or_file(field, value, file)?
        .ok_or_else(|| err(field, format!("set {field} or {field}_file")))
}

/// An `http://` or `https://` URL. Never echoed: it may carry credentials.
pub(crate) fn http_url(field: &str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(err(field, "must be an http(s) URL"))
    }
}

/// An optional list of configured audiences, as a scope.
pub(crate) fn audience_scope(
    field: &str,
    list: Option<Vec<String>>,
    known: &[Audience],
) -> Result<AudienceScope, ConfigError> {
    let Some(list) = list else {
        return Ok(AudienceScope::All);
    };
    let set = list
        .iter()
        .map(|a| {
            let a = Audience::parse(a).map_err(|e| err(field, e))?;
            if !known.contains(&a) {
                return Err(err(
                    field,
                    format!("{:?} is not one of tickets.audiences", a.as_ref()),
                ));
            }
            Ok(a)
        })
        .collect::<Result<HashSet<_>, _>>()?;
    Ok(AudienceScope::Only(Arc::new(set)))
}
