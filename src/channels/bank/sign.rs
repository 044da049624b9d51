//! Request and response signatures of the bank payout gateway.
//!
//! A request is signed SHA256withRSA with our client key over `METHOD\nPATH\nBODY`
//! (the exact body bytes sent; empty for a GET), so a signature cannot be moved to another
//! payment, another endpoint or another method. The gateway signs each answer with its
//! own key the same way, with the HTTP status code in the method's place:
//! `STATUS\nPATH\nBODY`, where PATH is the path of the request it answers. That binds the
//! answer to our request and to its status, so a signed "404 not found" or "409
//! duplicate" cannot be replayed as the answer to another call. Signatures travel in
//! headers, base64; the key id tells the gateway which of our keys to check with.

use crate::channels::rsa::{RsaSigner, RsaVerifier};

/// Names which of our keys signed the request (key rotation at the gateway).
pub const KEY_ID_HEADER: &str = "x-key-id";
/// Base64 SHA256withRSA signature, on requests (ours) and answers (the gateway's).
pub const SIGNATURE_HEADER: &str = "x-signature";

/// The bytes a request signature covers.
pub fn request_message(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    message(method, path, body)
}

/// The bytes an answer signature covers.
pub fn response_message(status: u16, path: &str, body: &[u8]) -> Vec<u8> {
    message(&status.to_string(), path, body)
}

fn message(first: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(first.len() + path.len() + body.len() + 2);
    out.extend_from_slice(first.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(path.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

pub fn sign_request(key: &RsaSigner, method: &str, path: &str, body: &[u8]) -> String {
    key.sign_base64(&request_message(method, path, body))
}

/// The gateway's check (the simulator's side).
pub fn verify_request(
    key: &RsaVerifier,
    method: &str,
    path: &str,
    body: &[u8],
    signature: &str,
) -> bool {
    key.verify_base64(&request_message(method, path, body), signature)
}

/// The gateway signing an answer (the simulator's side).
pub fn sign_response(key: &RsaSigner, status: u16, path: &str, body: &[u8]) -> String {
    key.sign_base64(&response_message(status, path, body))
}

pub fn verify_response(
    key: &RsaVerifier,
    status: u16,
    path: &str,
    body: &[u8],
    signature: &str,
) -> bool {
    key.verify_base64(&response_message(status, path, body), signature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PRIVATE: &str = include_str!("../../../tests/fixtures/keys/test_rsa_private.pem");
    const PUBLIC: &str = include_str!("../../../tests/fixtures/keys/test_rsa_public.pem");
    /// `payment_request.txt` is the canonical message of the request below; its signature
    /// was made with `openssl dgst -sha256 -sign test_rsa_private.pem payment_request.txt
    /// | base64 -w0`. Likewise the status report answering a query.
    const REQUEST_MESSAGE: &[u8] =
        include_bytes!("../../../tests/fixtures/bank/payment_request.txt");
    const REQUEST_SIGNATURE: &str =
        include_str!("../../../tests/fixtures/bank/payment_request.sig.b64");
    const RESPONSE_MESSAGE: &[u8] =
        include_bytes!("../../../tests/fixtures/bank/status_report.txt");
    const RESPONSE_SIGNATURE: &str =
        include_str!("../../../tests/fixtures/bank/status_report.sig.b64");

    const PATH: &str = "/bank/payments";
    const BODY: &str = r#"{"end_to_end_id":"PO0123456789abcdef0123456789abcd","instructed_amount":{"value":"500.00","currency":"CNY"},"debtor_account":"6222000000000000001","creditor":{"name":"Zhang San","account":"6222020200112233445","bank_name":"ICBC","branch":"Hangzhou Xihu Sub-branch"},"remittance_information":"Balance withdrawal wd-20261120-000123"}"#;
    const QUERY_PATH: &str = "/bank/payments/PO0123456789abcdef0123456789abcd";
    const REPORT: &str = r#"{"end_to_end_id":"PO0123456789abcdef0123456789abcd","status":"ACSC","bank_reference":"BR5F2A9C0D11E4B7A3"}"#;

    fn signer() -> RsaSigner {
        RsaSigner::from_pem(PRIVATE).unwrap()
    }

    fn verifier() -> RsaVerifier {
        RsaVerifier::from_pem(PUBLIC).unwrap()
    }

    #[test]
    fn canonical_messages_match_the_committed_fixtures() {
        assert_eq!(
            request_message("POST", PATH, BODY.as_bytes()),
            REQUEST_MESSAGE
        );
        assert_eq!(
            response_message(200, QUERY_PATH, REPORT.as_bytes()),
            RESPONSE_MESSAGE
        );
    }

    #[test]
    fn request_signature_matches_openssl_known_answer() {
        let sig = sign_request(&signer(), "POST", PATH, BODY.as_bytes());
        assert_eq!(sig, REQUEST_SIGNATURE.trim());
        assert!(verify_request(
            &verifier(),
            "POST",
            PATH,
            BODY.as_bytes(),
            REQUEST_SIGNATURE
        ));
    }

    #[test]
    fn response_signature_matches_openssl_known_answer() {
        let sig = sign_response(&signer(), 200, QUERY_PATH, REPORT.as_bytes());
        assert_eq!(sig, RESPONSE_SIGNATURE.trim());
        assert!(verify_response(
            &verifier(),
            200,
            QUERY_PATH,
            REPORT.as_bytes(),
            RESPONSE_SIGNATURE
        ));
    }

    #[test]
    fn tampering_with_body_path_method_or_status_breaks_the_signature() {
        let v = verifier();
        let other_amount = BODY.replace("500.00", "501.00");
        assert!(!verify_request(
            &v,
            "POST",
            PATH,
            other_amount.as_bytes(),
            REQUEST_SIGNATURE
        ));
        // Same JSON meaning, other bytes: the signature covers bytes, not meaning.
        let respaced = BODY.replacen(r#""value":"500.00""#, r#""value": "500.00""#, 1);
        assert!(!verify_request(
            &v,
            "POST",
            PATH,
            respaced.as_bytes(),
            REQUEST_SIGNATURE
        ));
        assert!(!verify_request(
            &v,
            "POST",
            "/bank/payments/x",
            BODY.as_bytes(),
            REQUEST_SIGNATURE
        ));
        assert!(!verify_request(
            &v,
            "PUT",
            PATH,
            BODY.as_bytes(),
            REQUEST_SIGNATURE
        ));
        assert!(!verify_response(
            &v,
            404,
            QUERY_PATH,
            REPORT.as_bytes(),
            RESPONSE_SIGNATURE
        ));
        assert!(!verify_response(
            &v,
            200,
            "/bank/payments/PO1",
            REPORT.as_bytes(),
            RESPONSE_SIGNATURE
        ));
        let rejected = REPORT.replace("ACSC", "RJCT");
        assert!(!verify_response(
            &v,
            200,
            QUERY_PATH,
            rejected.as_bytes(),
            RESPONSE_SIGNATURE
        ));
        assert!(!verify_response(
            &v,
            200,
            QUERY_PATH,
            REPORT.as_bytes(),
            "not base64 ***"
        ));
    }

    proptest! {
        #[test]
        fn any_request_round_trips(path in "/[a-zA-Z0-9/_-]{0,40}", body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let sig = sign_request(&signer(), "POST", &path, &body);
            prop_assert!(verify_request(&verifier(), "POST", &path, &body, &sig));
            prop_assert!(!verify_request(&verifier(), "GET", &path, &body, &sig));
        }
    }
}
