//! Tidies schema descriptions for `kubectl explain`: doc comments are hard-wrapped at 100
//! columns, and explain prints newlines as they are, so lines within a paragraph are joined.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};

/// Joins wrapped lines in every description of every version's schema.
pub(crate) fn tidy(crd: &mut CustomResourceDefinition) {
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            tidy_schema(schema);
        }
    }
}

fn tidy_schema(schema: &mut JSONSchemaProps) {
    if let Some(description) = schema.description.as_mut() {
        *description = join_wrapped_lines(description);
    }
    let children = schema
        .properties
        .iter_mut()
        .chain(schema.pattern_properties.iter_mut())
        .flat_map(|map| map.values_mut());
    for child in children {
        tidy_schema(child);
    }
    for list in [&mut schema.all_of, &mut schema.any_of, &mut schema.one_of]
        .into_iter()
        .flatten()
    {
        list.iter_mut().for_each(tidy_schema);
    }
    if let Some(not) = schema.not.as_mut() {
        tidy_schema(not);
    }
    match schema.items.as_mut() {
        Some(JSONSchemaPropsOrArray::Schema(item)) => tidy_schema(item),
        Some(JSONSchemaPropsOrArray::Schemas(items)) => items.iter_mut().for_each(tidy_schema),
        None => {}
    }
    for extra in [
        &mut schema.additional_properties,
        &mut schema.additional_items,
    ]
    .into_iter()
    .flatten()
    {
        if let JSONSchemaPropsOrBool::Schema(extra) = extra {
            tidy_schema(extra);
        }
    }
}

/// Joins the lines of each paragraph with spaces; paragraphs stay separated by a blank line.
pub(crate) fn join_wrapped_lines(text: &str) -> String {
    text.split("\n\n")
        .map(|paragraph| {
            paragraph
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|paragraph| !paragraph.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}
