//! Types and schema helpers shared by several kinds.

/// Implements `JsonSchema` for `$ty` with the schema `$schema`, always written inline (never as
/// a `$ref`), which the apiserver needs for `x-kubernetes-*` extensions on a field.
macro_rules! inline_schema {
    ($ty:ident, $schema:tt) => {
        impl schemars::JsonSchema for $ty {
            fn inline_schema() -> bool {
                true
            }

            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($ty).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!($schema)
            }
        }
    };
}

pub mod access_policy;
pub mod cidr;
pub mod condition;
pub mod duration;
pub mod log_level;
pub mod names;
pub mod port;
pub mod resources;
pub(crate) mod rules;
pub mod status;
pub mod target_ref;
