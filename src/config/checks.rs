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

/// A file that holds a secret (a password, a ticket secret, a key hash, an
/// HMAC secret, a URL with a password): refused when users other than its
/// owner may write to it (they could swap the secret), and noted in
/// `warnings` when every user may read it.
pub(crate) fn read_secret_file(
    field: &str,
    path: &Path,
    warnings: &mut Vec<String>,
) -> Result<String, ConfigError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| err(field, format!("cannot read {}: {e}", path.display())))?
            .permissions()
            .mode();
        let fix = format!("chmod 600 {}", path.display());
        if mode & 0o022 != 0 {
            let who = if mode & 0o002 != 0 {
                "every user"
            } else {
                "its group"
            };
            return Err(err(
                field,
                format!(
                    "{} holds a secret and {who} may write to it (mode {:03o}); \
                     make it private: {fix}",
                    path.display(),
                    mode & 0o777
                ),
            ));
        }
        if mode & 0o004 != 0 {
            warnings.push(format!(
                "{field}: {} holds a secret and every user may read it (mode {:03o}); \
                 make it private: {fix}",
                path.display(),
                mode & 0o777
            ));
        }
    }
    read_file(field, path)
}

/// What a `<name>_file` holds: a secret (checked by [`read_secret_file`],
/// with the warnings going here) or public data.
pub(crate) enum FileHolds<'a> {
    Secret(&'a mut Vec<String>),
    Public,
}

/// A value that may be given in the file or in a file of its own: `field`
/// and `file_field` are their dotted names (`store.redis_url`,
/// `store.redis_url_file`).
pub(crate) struct Pair<'a> {
    pub(crate) field: &'a str,
    pub(crate) value: Option<String>,
    pub(crate) file_field: &'a str,
    pub(crate) file: Option<&'a Path>,
}

impl<'a> Pair<'a> {
    /// The key the value came from: the file's, when one was named.
    pub(crate) fn given_field(&self) -> &'a str {
        if self.file.is_some() {
            self.file_field
        } else {
            self.field
        }
    }
}

/// The one rule for every value / `_file` pair: at most one of the two, and
/// a file is read at start.
pub(crate) fn value_or_file(
    pair: Pair<'_>,
    holds: FileHolds<'_>,
) -> Result<Option<SecretString>, ConfigError> {
    let Pair {
        field,
        value,
        file_field,
        file,
    } = pair;
    match (value, file) {
        (Some(_), Some(_)) => Err(err(field, format!("set {field} or {file_field}, not both"))),
        (Some(v), None) => Ok(Some(v.into())),
        (None, Some(p)) => {
            let text = match holds {
                FileHolds::Secret(warnings) => read_secret_file(file_field, p, warnings)?,
                FileHolds::Public => read_file(file_field, p)?,
            };
            Ok(Some(text.into()))
        }
        (None, None) => Ok(None),
    }
}

/// Like [`value_or_file`], for a secret that must be set.
pub(crate) fn required_secret(
    pair: Pair<'_>,
    warnings: &mut Vec<String>,
) -> Result<SecretString, ConfigError> {
    let (field, file_field) = (pair.field, pair.file_field);
    value_or_file(pair, FileHolds::Secret(warnings))?
        .ok_or_else(|| err(field, format!("set {field} or {file_field}")))
}

/// An `http://` or `https://` URL that parses. Never echoed: it may carry
/// credentials.
pub(crate) fn http_url(field: &str, url: &str) -> Result<(), ConfigError> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(err(field, "must be an http(s) URL"));
    }
    match url::Url::parse(url) {
        Ok(u) if u.host().is_some() => Ok(()),
        _ => Err(err(field, "is not a valid URL: check its host and port")),
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
