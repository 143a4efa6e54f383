//! The data path's boxed error; callers classify it by walking the source chain.

/// A boxed error, as every data-path service returns.
pub type Error = Box<dyn std::error::Error + Send + Sync + 'static>;

/// True when `error`, or any error in its source chain, is an `E`.
pub fn is_caused_by<E: std::error::Error + 'static>(
    error: &(dyn std::error::Error + 'static),
) -> bool {
    let mut cur = Some(error);
    while let Some(e) = cur {
        if e.is::<E>() {
            return true;
        }
        cur = e.source();
    }
    false
}
