use super::*;

#[test]
fn refresh_is_seventy_percent_clamped() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let min = Duration::from_secs(10);
    let max = Duration::from_secs(24 * 3600);
    let day = Duration::from_secs(24 * 3600);
    assert_eq!(refresh_in(now + day, now, min, max), day.mul_f64(0.7));
    assert_eq!(refresh_in(now + Duration::from_secs(5), now, min, max), min);
    assert_eq!(refresh_in(now - Duration::from_secs(5), now, min, max), min);
    assert_eq!(refresh_in(now + day * 10, now, min, max), max);
}

#[test]
fn key_and_csr_are_created_once_with_the_contract_shape() {
    let dir = std::env::temp_dir().join(format!("trellis-identity-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let name = "web.shop.serviceaccount.identity.trellis.cluster.local";
    let first = load_or_create(&dir, name).unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.join(KEY_FILE)).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    // A second call reuses the same key and CSR.
    let second = load_or_create(&dir, name).unwrap();
    assert_eq!(first.csr, second.csr);
    assert_eq!(first.key.secret_pkcs8_der(), second.key.secret_pkcs8_der());

    use x509_parser::prelude::*;
    let (_, csr) = X509CertificationRequest::from_der(&first.csr).unwrap();
    let cn: Vec<_> = csr
        .certification_request_info
        .subject
        .iter_common_name()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(cn, vec![name.to_string()]);
    let sans: Vec<String> = csr
        .requested_extensions()
        .into_iter()
        .flatten()
        .filter_map(|e| match e {
            ParsedExtension::SubjectAlternativeName(san) => Some(san),
            _ => None,
        })
        .flat_map(|san| san.general_names.iter().map(|g| g.to_string()))
        .collect();
    assert_eq!(sans, vec![format!("DNSName({name})")]);
    let _ = std::fs::remove_dir_all(&dir);
}
