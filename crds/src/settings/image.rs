//! Container image references split into repository, tag and digest.

use std::fmt;

/// A container image reference like `registry:5000/trellis/proxy:0.1.0` or
/// `ghcr.io/x/proxy@sha256:…`: it prints back exactly as it was parsed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// Registry and path up to the image name, like `registry:5000/trellis/proxy`.
    pub repository: String,
    /// The tag after the name, like `0.1.0`, when there is one.
    pub tag: Option<String>,
    /// The digest after `@`, like `sha256:…`, when there is one.
    pub digest: Option<String>,
}

impl ImageRef {
    /// `<repository>:<tag>`.
    pub fn tagged(repository: impl Into<String>, tag: impl Into<String>) -> Self {
        Self {
            repository: repository.into(),
            tag: Some(tag.into()),
            digest: None,
        }
    }

    /// Splits `reference`; `None` when it is empty, holds whitespace or has no repository.
    pub fn parse(reference: &str) -> Option<Self> {
        if reference.is_empty() || reference.chars().any(char::is_whitespace) {
            return None;
        }
        let (rest, digest) = match reference.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest.to_string())),
            None => (reference, None),
        };
        // A colon before the last `/` is a registry port, not a tag.
        let (path, last) = match rest.rsplit_once('/') {
            Some((path, last)) => (Some(path), last),
            None => (None, rest),
        };
        let (name, tag) = match last.split_once(':') {
            Some((name, tag)) => (name, Some(tag.to_string())),
            None => (last, None),
        };
        if name.is_empty() || tag.as_deref() == Some("") || digest.as_deref() == Some("") {
            return None;
        }
        let repository = match path {
            Some(path) => format!("{path}/{name}"),
            None => name.to_string(),
        };
        Some(Self {
            repository,
            tag,
            digest,
        })
    }

    /// The last path segment of the repository, like `proxy`.
    pub fn name(&self) -> &str {
        self.repository
            .rsplit_once('/')
            .map_or(self.repository.as_str(), |(_, name)| name)
    }

    /// The same image at `tag`; a reference pinned by digest is kept as it is.
    pub fn with_tag(&self, tag: &str) -> Self {
        if self.digest.is_some() {
            return self.clone();
        }
        Self::tagged(self.repository.clone(), tag)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}
