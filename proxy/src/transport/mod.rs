//! Transport: listeners, original destinations, prefixed I/O, protocol detection and TCP forwarding.

pub mod control_addr;
pub mod detect;
pub mod forward;
pub mod header;
pub mod listen;
pub mod orig_dst;
pub mod prefixed;

pub use detect::{Protocol, detect};
pub use listen::{Accepted, bind};
pub use orig_dst::OrigDst;
pub use prefixed::PrefixedIo;
