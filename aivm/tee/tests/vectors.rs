//! Real attestations (`vectors/`, copied unchanged from `../shared/tee-vectors/` with their
//! licences): what each must verify to, and every tampering refused.

use aivm_tee::{verify, verify_bound, Evidence, Format, HexBytes, TeeError, TeePolicy};

use aivm_tee::samples::*;

/// The collateral's validity window: `[from, until)`.
fn window(collateral: &[u8]) -> (u64, u64) {
    dcap_window(collateral).unwrap()
}

fn accepting(advisories: &[&str]) -> TeePolicy {
    TeePolicy { accepted_advisories: advisories.iter().map(|s| s.to_string()).collect(), ..TeePolicy::default() }
}

#[test]
fn sgx_quote_gives_its_status_and_advisories() {
    let (now, _) = window(SGX_COLLATERAL);
    let err = verify(Format::SgxDcap, SGX_QUOTE, SGX_COLLATERAL, now, &TeePolicy::default()).unwrap_err();
    assert_eq!(
        err,
        TeeError::Status { status: "ConfigurationAndSWHardeningNeeded".into(), advisories: vec!["INTEL-SA-00289".into(), "INTEL-SA-00615".into()] }
    );
    assert_eq!(err.code(), -3);
    // Governance lists one advisory: still refused. Both: accepted.
    assert!(matches!(verify(Format::SgxDcap, SGX_QUOTE, SGX_COLLATERAL, now, &accepting(&["INTEL-SA-00289"])), Err(TeeError::Status { .. })));
    let v = verify(Format::SgxDcap, SGX_QUOTE, SGX_COLLATERAL, now, &accepting(&["INTEL-SA-00289", "INTEL-SA-00615"])).unwrap();
    assert_eq!(v.status, "ConfigurationAndSWHardeningNeeded");
    assert_eq!(v.measurement.len(), 32);
    assert_eq!(v.report_data.len(), 64);
    // An SGX quote is not a TDX one.
    assert!(matches!(verify(Format::TdxDcap, SGX_QUOTE, SGX_COLLATERAL, now, &accepting(&["INTEL-SA-00289", "INTEL-SA-00615"])), Err(TeeError::Malformed(_))));
}

#[test]
fn tdx_quote_is_up_to_date() {
    let (now, until) = window(TDX_COLLATERAL);
    for t in [now, until - 1] {
        let v = verify(Format::TdxDcap, TDX_QUOTE, TDX_COLLATERAL, t, &TeePolicy::default()).unwrap();
        assert_eq!(v.status, "UpToDate");
        assert!(v.advisories.is_empty());
        assert_eq!(v.measurement.len(), 48);
    }
}

#[test]
fn out_of_date_tdx_tcb_is_refused() {
    let (now, _) = window(TDX_OLD_COLLATERAL);
    match verify(Format::TdxDcap, TDX_OLD_QUOTE, TDX_OLD_COLLATERAL, now, &TeePolicy::default()) {
        Err(TeeError::Status { status, .. }) => assert!(status.starts_with("OutOfDate"), "{status}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn collateral_outside_its_window_or_too_old_is_stale() {
    let (from, until) = window(TDX_COLLATERAL);
    for t in [from - 1, until, 0, u64::MAX / 2] {
        let e = verify(Format::TdxDcap, TDX_QUOTE, TDX_COLLATERAL, t, &TeePolicy::default()).unwrap_err();
        assert!(matches!(e, TeeError::Stale { .. }), "{t}: {e:?}");
        assert_eq!(e.code(), -2);
    }
    assert!(matches!(verify(Format::TdxDcap, TDX_QUOTE, TDX_COLLATERAL, until, &TeePolicy::default()), Err(TeeError::Stale { .. })));
    let strict = TeePolicy { max_age_secs: 60, ..TeePolicy::default() };
    assert!(matches!(verify(Format::TdxDcap, TDX_QUOTE, TDX_COLLATERAL, from + 3600, &strict), Err(TeeError::Stale { .. })));
}

/// Header (48 bytes) and report body, then the 4-byte auth-data length and the 64-byte quote
/// signature: the part the attestation key signs, and the signature itself.
fn signed_part(quote: &[u8], body: usize) -> std::ops::Range<usize> {
    let _ = quote;
    0..48 + body + 4 + 64
}

fn every_flip_refused(format: Format, quote: &[u8], collateral: &[u8], body: usize, policy: &TeePolicy) {
    let (now, _) = window(collateral);
    verify(format, quote, collateral, now, policy).unwrap();
    let mut accepted = Vec::new();
    for i in signed_part(quote, body) {
        let mut q = quote.to_vec();
        q[i] ^= 0x01;
        if verify(format, &q, collateral, now, policy).is_ok() {
            accepted.push(i);
        }
    }
    assert!(accepted.is_empty(), "{format}: flips accepted at {accepted:?}");
}

#[test]
fn every_flipped_bit_of_a_signed_dcap_quote_is_refused() {
    every_flip_refused(Format::SgxDcap, SGX_QUOTE, SGX_COLLATERAL, 384, &accepting(&["INTEL-SA-00289", "INTEL-SA-00615"]));
    every_flip_refused(Format::TdxDcap, TDX_QUOTE, TDX_COLLATERAL, 584, &TeePolicy::default());
}

#[test]
fn tampered_collateral_is_refused() {
    let (now, _) = window(TDX_COLLATERAL);
    let text = std::str::from_utf8(TDX_COLLATERAL).unwrap();
    // A TCB level's status upgraded, a signature byte changed, a CRL byte changed.
    let c: serde_json::Value = serde_json::from_str(text).unwrap();
    let mut tampered = Vec::new();
    let mut c1 = c.clone();
    c1["tcb_info"] = c["tcb_info"].as_str().unwrap().replacen("OutOfDate", "UpToDate", 1).into();
    tampered.push(c1);
    let mut c2 = c.clone();
    let sig = c["tcb_info_signature"].as_str().unwrap();
    c2["tcb_info_signature"] = format!("{}{}", if sig.starts_with('0') { "1" } else { "0" }, &sig[1..]).into();
    tampered.push(c2);
    let mut c3 = c.clone();
    let sig = c["qe_identity_signature"].as_str().unwrap();
    c3["qe_identity_signature"] = format!("{}{}", if sig.starts_with('0') { "1" } else { "0" }, &sig[1..]).into();
    tampered.push(c3);
    let mut c4 = c.clone();
    let crl = c["pck_crl"].as_str().unwrap();
    let n = crl.len() - 10;
    c4["pck_crl"] = format!("{}{}{}", &crl[..n], if &crl[n..n + 1] == "0" { "1" } else { "0" }, &crl[n + 1..]).into();
    tampered.push(c4);
    for (i, t) in tampered.iter().enumerate() {
        let bytes = serde_json::to_vec(t).unwrap();
        let r = verify(Format::TdxDcap, TDX_QUOTE, &bytes, now, &TeePolicy::default());
        assert!(r.is_err(), "tampering {i} accepted");
    }
    // Garbage and truncation.
    for bad in [&b"{}"[..], &TDX_COLLATERAL[..100], b"not json"] {
        assert!(matches!(verify(Format::TdxDcap, TDX_QUOTE, bad, now, &TeePolicy::default()), Err(TeeError::Malformed(_))));
    }
    // Cut inside its structure, or carrying non-zero bytes after it (the vector itself ends
    // in zero padding).
    let end = TDX_QUOTE.iter().rposition(|b| *b != 0).unwrap() + 1;
    for cut in [0, 48, 600, end - 1] {
        assert!(verify(Format::TdxDcap, &TDX_QUOTE[..cut], TDX_COLLATERAL, now, &TeePolicy::default()).is_err(), "cut at {cut}");
    }
    let mut extra = TDX_QUOTE.to_vec();
    *extra.last_mut().unwrap() = 1;
    assert!(matches!(verify(Format::TdxDcap, &extra, TDX_COLLATERAL, now, &TeePolicy::default()), Err(TeeError::Malformed(_))));
}

#[test]
fn snp_report_verifies_under_amds_chain() {
    let v = verify(Format::SevSnp, &snp_report(), SNP_VCEK, SNP_NOW, &TeePolicy::default()).unwrap();
    assert_eq!(v.status, "UpToDate");
    assert_eq!(v.measurement.len(), 48);
    // The PEM chain shipped with the vector is AMD's Milan ARK and ASK, which are built in.
    let text = std::str::from_utf8(SNP_CHAIN_PEM).unwrap();
    let pems: Vec<_> = text.split_inclusive("-----END CERTIFICATE-----\n").filter(|p| p.contains("BEGIN")).collect();
    assert_eq!(pems.len(), 2);
    let builtin = [sev::certs::snp::builtin::milan::ask().unwrap(), sev::certs::snp::builtin::milan::ark().unwrap()];
    for p in pems {
        let c = sev::certs::snp::Certificate::from_pem(p.as_bytes()).unwrap();
        assert!(builtin.contains(&c), "a chain certificate is not AMD's built-in Milan root");
    }
}

#[test]
fn snp_tampering_is_refused() {
    let report = snp_report();
    let p = TeePolicy::default();
    let mut r = report.clone();
    r[21] ^= 0x80;
    assert!(verify(Format::SevSnp, &r, SNP_VCEK, SNP_NOW, &p).is_err());
    let mut vcek = SNP_VCEK.to_vec();
    vcek[40] ^= 0xff;
    assert!(verify(Format::SevSnp, &report, &vcek, SNP_NOW, &p).is_err());
    // Every bit of the signed part (0..0x2A0) and of the signature.
    let mut accepted = Vec::new();
    for i in (0..0x2A0).chain(0x2A0..0x2A0 + 144) {
        let mut r = report.clone();
        r[i] ^= 0x01;
        if verify(Format::SevSnp, &r, SNP_VCEK, SNP_NOW, &p).is_ok() {
            accepted.push(i);
        }
    }
    assert!(accepted.is_empty(), "flips accepted at {accepted:?}");
    // Outside the VCEK's validity; a minimum TCB above the report's.
    assert!(matches!(verify(Format::SevSnp, &report, SNP_VCEK, 1_600_000_000, &p), Err(TeeError::Stale { .. })));
    let strict = TeePolicy { snp_min_tcb: aivm_tee::SnpTcb { snp: 255, ..Default::default() }, ..TeePolicy::default() };
    assert!(matches!(verify(Format::SevSnp, &report, SNP_VCEK, SNP_NOW, &strict), Err(TeeError::Status { .. })));
    // Wrong lengths, trailing bytes.
    assert!(verify(Format::SevSnp, &report[..1000], SNP_VCEK, SNP_NOW, &p).is_err());
    assert!(verify(Format::SevSnp, &report, &[SNP_VCEK, &[0u8][..]].concat(), SNP_NOW, &p).is_err());
}

#[test]
fn an_attestation_binds_its_report_data_and_a_trusted_measurement() {
    let report = snp_report();
    let v = verify(Format::SevSnp, &report, SNP_VCEK, SNP_NOW, &TeePolicy::default()).unwrap();
    let e = Evidence { format: Format::SevSnp, quote: report, collateral: SNP_VCEK.to_vec() };
    let rd: [u8; 64] = v.report_data.clone().try_into().unwrap();
    let trusted = vec![HexBytes(v.measurement.clone())];
    assert!(verify_bound(&e, &rd, SNP_NOW, &TeePolicy::default(), &trusted).is_ok());
    let mut other = rd;
    other[0] ^= 1;
    assert_eq!(verify_bound(&e, &other, SNP_NOW, &TeePolicy::default(), &trusted), Err(TeeError::ReportData));
    assert!(matches!(verify_bound(&e, &rd, SNP_NOW, &TeePolicy::default(), &[HexBytes(vec![0; 48])]), Err(TeeError::Measurement(_))));
}

#[test]
fn devnet_attestations_only_where_genesis_enables_them() {
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let rd = [9u8; 64];
    let q = aivm_tee::devnet_quote(&key, &[3; 32], &rd);
    let off = TeePolicy::default();
    assert_eq!(verify(Format::Devnet, &q, &[], 0, &off), Err(TeeError::Disabled(Format::Devnet)));
    let on = TeePolicy { formats: vec![Format::Devnet], devnet_signers: vec![key.verifying_key().to_bytes().to_vec().into()], ..TeePolicy::default() };
    let v = verify(Format::Devnet, &q, &[], 0, &on).unwrap();
    assert_eq!((v.measurement, v.report_data), (vec![3; 32], rd.to_vec()));
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
    assert!(matches!(verify(Format::Devnet, &aivm_tee::devnet_quote(&stranger, &[3; 32], &rd), &[], 0, &on), Err(TeeError::Invalid(_))));
    for i in 0..q.len() {
        let mut t = q.clone();
        t[i] ^= 1;
        assert!(verify(Format::Devnet, &t, &[], 0, &on).is_err(), "flip at {i} accepted");
    }
}

#[test]
fn oversized_inputs_are_refused_before_any_work() {
    let big = vec![0u8; aivm_tee::MAX_QUOTE + 1];
    assert!(matches!(aivm_tee::work(Format::TdxDcap, &big, &[]), Err(TeeError::TooLarge { .. })));
    assert!(matches!(verify(Format::SgxDcap, &[], &vec![b' '; aivm_tee::MAX_COLLATERAL + 1], 0, &TeePolicy::default()), Err(TeeError::TooLarge { .. })));
    let w = aivm_tee::work(Format::TdxDcap, TDX_QUOTE, TDX_COLLATERAL).unwrap();
    assert!(w.certificates >= 10, "{w:?}");
}
