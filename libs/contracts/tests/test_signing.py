from seoblog_contracts import sign, verify

KEY = b"k" * 32


def test_signature_verifies_for_the_same_body_and_key():
    body = b'{"job_id": "j"}'
    assert verify(KEY, body, sign(KEY, body)) is None
    assert sign(KEY, body).startswith("v1=")


def test_missing_wrong_and_tampered_signatures_are_told_apart():
    body = b'{"job_id": "j"}'
    assert verify(KEY, body, None) == "unsigned"
    assert verify(KEY, body, "") == "unsigned"
    assert verify(KEY, body, sign(b"other", body)) == "bad_signature"
    assert verify(KEY, body + b" ", sign(KEY, body)) == "bad_signature"
    assert verify(KEY, body, "v1=zz") == "bad_signature"
