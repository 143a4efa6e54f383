//! Ports given by number or name, and port ranges, as int-or-string fields with CEL checks.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// For `$ty`, an untagged enum of `$int(i32)` and `$string(String)`: implements `Display`
/// (the number, or the string as written) and an inline `x-kubernetes-int-or-string` schema
/// at most `$max_length` long and checked by CEL `$rule`, which fails with `$message`.
macro_rules! int_or_string {
    (
        $ty:ident { $int:ident, $string:ident },
        max_length = $max_length:literal,
        $rule:expr,
        $message:expr
    ) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    Self::$int(n) => write!(f, "{n}"),
                    Self::$string(s) => f.write_str(s),
                }
            }
        }

        inline_schema!($ty, {
            "x-kubernetes-int-or-string": true,
            "maxLength": $max_length,
            "x-kubernetes-validations": [{ "rule": $rule, "message": $message }],
        });
    };
}

/// A CEL rule accepting a port number (1-65535) or an IANA service name: 1-15 lowercase
/// letters, digits and `-`, with at least one letter, no `-` at either end and no `--`.
const PORT_RULE: &str = "type(self) == int ? (self >= 1 && self <= 65535) : \
     (self.size() <= 15 && self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') \
     && self.matches('[a-z]') && !self.contains('--'))";

const PORT_MESSAGE: &str = "must be a port number from 1 to 65535 or a port name \
     (1-15 lowercase letters, digits and '-', with at least one letter, like http or admin-http)";

/// A CEL rule accepting a port number (1-65535) or a string `"<port>"` or
/// `"<first>-<last>"` with `first <= last`, both within 1-65535.
const PORT_RANGE_RULE: &str = "type(self) == int ? (self >= 1 && self <= 65535) : \
     (self.matches('^[0-9]{1,5}(-[0-9]{1,5})?$') \
     && self.split('-').all(p, int(p) >= 1 && int(p) <= 65535) \
     && int(self.split('-')[0]) <= int(self.split('-')[self.split('-').size() - 1]))";

const PORT_RANGE_MESSAGE: &str = "must be a port from 1 to 65535 (3306) or an inclusive \
     range written as a string (\"4000-4100\") whose first port is not above its last";

/// A port given by number (`8080`) or by the name of a container port (`http`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(untagged)]
pub enum Port {
    /// A port number, 1-65535.
    Number(i32),
    /// The name of a port declared by the selected workloads.
    Name(String),
}

int_or_string!(
    Port { Number, Name },
    max_length = 15,
    PORT_RULE,
    PORT_MESSAGE
);

/// One port (`3306`) or an inclusive range of ports written as a string (`"4000-4100"`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(untagged)]
pub enum PortRange {
    /// A single port, 1-65535.
    Port(i32),
    /// `"<port>"` or `"<first>-<last>"`.
    Range(String),
}

impl PortRange {
    /// The first and last port of the range (equal for a single port).
    pub fn bounds(&self) -> Result<(u16, u16), Error> {
        let invalid = || Error::InvalidPortRange {
            value: self.to_string(),
        };
        let port = |n: i64| {
            u16::try_from(n)
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(invalid)
        };
        match self {
            Self::Port(n) => port(i64::from(*n)).map(|p| (p, p)),
            Self::Range(s) => {
                let (first, last) = s.split_once('-').unwrap_or((s, s));
                let parse = |part: &str| part.parse::<i64>().map_err(|_| invalid());
                let (first, last) = (port(parse(first)?)?, port(parse(last)?)?);
                if first > last {
                    return Err(invalid());
                }
                Ok((first, last))
            }
        }
    }
}

int_or_string!(
    PortRange { Port, Range },
    max_length = 11,
    PORT_RANGE_RULE,
    PORT_RANGE_MESSAGE
);

#[cfg(test)]
mod tests;
