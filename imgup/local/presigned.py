"""Presigned (query-string SigV4) PUTs, checked as strictly as S3 checks them.

moto stores whatever body a presigned URL is used with: it checks neither the signature,
nor the expiry, nor the signed headers, nor a checksum. The local stack therefore checks a
presigned PUT itself before moto sees it, in S3's order and with S3's status codes, error
codes and XML:

1. the query's auth parameters are all there and well formed (400
   ``AuthorizationQueryParametersError``); no Authorization header beside them (400
   ``InvalidArgument``);
2. the access key is the one the stack's handlers sign with (403 ``InvalidAccessKeyId``);
3. the URL is not expired, nor dated more than 15 minutes ahead (403 ``AccessDenied``);
4. the signature matches the request as sent: method, path, query, and every signed header,
   Content-Length and Content-Type included (403 ``SignatureDoesNotMatch``); no ``x-amz-*``
   header is sent unsigned (403 ``AccessDenied``, ``HeadersNotSigned``);
5. the body is as long as its Content-Length (400 ``IncompleteBody``, ``RequestTimeout``);
6. a sent ``x-amz-checksum-sha256`` / ``-sha1`` / ``-crc32`` or ``Content-MD5`` matches the
   body (400 ``BadDigest``; malformed: 400 ``InvalidRequest`` / ``InvalidDigest``).

A request that passes goes on to moto in-process with its body in memory, and with
``x-amz-sdk-checksum-algorithm`` set when it carried a SHA-256, so that moto keeps the
checksum and returns it to ``HeadObject``/``GetObject`` with ``ChecksumMode=ENABLED``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import io
import re
import zlib
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote

from ..aws import LOCAL_CREDENTIALS
from .wire import (
    BODY_ERROR_CODES,
    MAX_OBJECT_BYTES,
    Answer,
    BodyError,
    declared_length,
    known_regions,
    read_body,
    s3_error,
)

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_EXPIRES = 7 * 24 * 3600  # SigV4's longest presigned URL
FUTURE_SKEW = dt.timedelta(minutes=15)
SECRETS = {LOCAL_CREDENTIALS["aws_access_key_id"]: LOCAL_CREDENTIALS["aws_secret_access_key"]}
REQUIRED = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date", "X-Amz-SignedHeaders")
_DATE = re.compile(r"\d{8}T\d{6}Z")
_BODY_MESSAGES = {
    "IncompleteBody": "You did not provide the number of bytes specified by the Content-Length HTTP header.",
    "RequestTimeout": "Your socket connection to the server was not read from or written to within the "
    "timeout period. Idle connections will be closed.",
    "EntityTooLarge": "Your proposed upload exceeds the maximum allowed size",
    "BadRequest": "An error occurred when parsing the HTTP request.",
}
_DRAIN_LIMIT = 64 * 1024 * 1024  # a refused body up to this size is read, so the client sees the answer


def is_presigned_put(environ: dict[str, Any]) -> bool:
    query = environ.get("QUERY_STRING", "")
    return environ.get("REQUEST_METHOD") == "PUT" and (
        "X-Amz-Signature=" in query or "X-Amz-Algorithm=" in query
    )


class PresignedPut:
    """Checks presigned PUTs; ``now`` is the clock (a seam for tests)."""

    def __init__(
        self, now: Callable[[], dt.datetime] | None = None, secrets: dict[str, str] | None = None
    ) -> None:
        self.now = now or (lambda: dt.datetime.now(dt.timezone.utc))
        self.secrets = SECRETS if secrets is None else secrets

    def check(self, environ: dict[str, Any]) -> Answer | None:
        """S3's error for the request, or None when S3 would take it; then the request's
        ``wsgi.input`` holds its body, read whole, and moto is told to keep its SHA-256."""
        refusal = self._authenticate(environ)
        if refusal is not None:
            _drain(environ)
            return refusal
        try:
            body = read_body(environ, MAX_OBJECT_BYTES)
        except BodyError as exc:
            code = BODY_ERROR_CODES[exc.kind]
            return s3_error(400, code, _BODY_MESSAGES[code])
        refusal = _verify_digests(environ, body)
        if refusal is not None:
            return refusal
        environ["wsgi.input"] = io.BytesIO(body)
        if environ.get("HTTP_X_AMZ_CHECKSUM_SHA256"):
            environ["HTTP_X_AMZ_SDK_CHECKSUM_ALGORITHM"] = "SHA256"
        return None

    def _authenticate(self, environ: dict[str, Any]) -> Answer | None:
        pairs = _query_pairs(environ.get("QUERY_STRING", ""))
        params = dict(pairs)
        if environ.get("HTTP_AUTHORIZATION"):
            return s3_error(
                400,
                "InvalidArgument",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature "
                "query string parameter or the Authorization header should be specified",
                ArgumentName="Authorization",
                ArgumentValue=environ["HTTP_AUTHORIZATION"][:200],
            )
        if not all(params.get(name) for name in (*REQUIRED, "X-Amz-Expires")):
            return _query_error(
                "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
                "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters."
            )
        if params["X-Amz-Algorithm"] != ALGORITHM:
            return _query_error(f'X-Amz-Algorithm only supports "{ALGORITHM}"')
        credential = params["X-Amz-Credential"].split("/")
        if len(credential) != 5 or credential[4] != "aws4_request":
            return _query_error(
                "Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; "
                'expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".'
            )
        access_key, date, region, service, _ = credential
        if service != "s3":
            return _query_error(
                f'Error parsing the X-Amz-Credential parameter; incorrect service "{service[:40]}". '
                'This endpoint belongs to "s3".'
            )
        if region not in known_regions():
            return _query_error(
                f"Error parsing the X-Amz-Credential parameter; the region '{region[:40]}' is wrong."
            )
        stamp = params["X-Amz-Date"]
        try:
            if not _DATE.fullmatch(stamp):
                raise ValueError(stamp)
            signed_at = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
        except ValueError:
            return _query_error("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
        if date != stamp[:8]:
            return _query_error(
                f'Error parsing the X-Amz-Credential parameter; incorrect date format "{date[:20]}". '
                'This date in the credential must be in the format "yyyyMMdd".'
                if not re.fullmatch(r"\d{8}", date)
                else "Invalid credential date. Date is not the same as X-Amz-Date."
            )
        expires_text = params["X-Amz-Expires"]
        if not expires_text.isdigit():
            return _query_error("X-Amz-Expires should be a number")
        expires = int(expires_text)
        if expires > MAX_EXPIRES:
            return _query_error(f"X-Amz-Expires must be less than a week (in seconds) that is {MAX_EXPIRES}")
        secret = self.secrets.get(access_key)
        if secret is None:
            return s3_error(
                403,
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist in our records.",
                AWSAccessKeyId=access_key,
            )
        now = self.now()
        if now > signed_at + dt.timedelta(seconds=expires):
            return s3_error(
                403,
                "AccessDenied",
                "Request has expired",
                **{"X-Amz-Expires": str(expires)},
                Expires=_iso(signed_at + dt.timedelta(seconds=expires)),
                ServerTime=_iso(now),
            )
        if signed_at > now + FUTURE_SKEW:
            return s3_error(
                403,
                "AccessDenied",
                "Request is not yet valid",
                RequestTime=_iso(signed_at),
                ServerTime=_iso(now),
            )
        signed = params["X-Amz-SignedHeaders"].split(";")
        canonical = canonical_request(environ, pairs, signed)
        string_to_sign = "\n".join(
            [
                ALGORITHM,
                stamp,
                f"{date}/{region}/s3/aws4_request",
                hashlib.sha256(canonical.encode()).hexdigest(),
            ]
        )
        expected = signature(secret, date, region, string_to_sign)
        if not hmac.compare_digest(expected, params["X-Amz-Signature"]):
            return s3_error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. "
                "Check your key and signing method.",
                AWSAccessKeyId=access_key,
                StringToSign=string_to_sign,
                SignatureProvided=params["X-Amz-Signature"][:200],
                StringToSignBytes=_hex_bytes(string_to_sign),
                CanonicalRequest=canonical,
                CanonicalRequestBytes=_hex_bytes(canonical),
            )
        unsigned = sorted(name for name in _amz_headers(environ) if name not in signed)
        if unsigned:
            return s3_error(
                403,
                "AccessDenied",
                "There were headers present in the request which were not signed",
                HeadersNotSigned=", ".join(unsigned),
            )
        return None


def tidy_put_answer(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """moto's answer to a stored PUT, as S3 gives it: no Content-Type for the empty body, no
    echo of the SDK's algorithm header, and the checksum's type beside a checksum."""
    kept = [
        (name, value)
        for name, value in headers
        if name.lower() not in {"content-type", "x-amz-sdk-checksum-algorithm"}
    ]
    if any(name.lower().startswith("x-amz-checksum-") for name, _ in kept):
        kept.append(("x-amz-checksum-type", "FULL_OBJECT"))
    return kept


def canonical_request(environ: dict[str, Any], pairs: list[tuple[str, str]], signed: list[str]) -> str:
    """SigV4's canonical request for a presigned S3 request, from the request as sent."""
    raw_path = (environ.get("REQUEST_URI") or environ.get("RAW_URI") or environ.get("PATH_INFO", "/")).split(
        "?"
    )[0]
    path = quote(unquote(raw_path), safe="/~")
    query = "&".join(
        f"{k}={v}"
        for k, v in sorted(
            (quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs if k != "X-Amz-Signature"
        )
    )
    headers = "".join(f"{name}:{_header(environ, name)}\n" for name in signed)
    return "\n".join(
        [environ.get("REQUEST_METHOD", "PUT"), path, query, headers, ";".join(signed), "UNSIGNED-PAYLOAD"]
    )


def signature(secret: str, date: str, region: str, string_to_sign: str) -> str:
    key = f"AWS4{secret}".encode()
    for part in (date, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def _query_pairs(query: str) -> list[tuple[str, str]]:
    pairs = []
    for part in query.split("&"):
        if part:
            key, _, value = part.partition("=")
            pairs.append((unquote(key), unquote(value)))
    return pairs


def _header(environ: dict[str, Any], name: str) -> str:
    if name == "content-type":
        value = environ.get("CONTENT_TYPE")
    elif name == "content-length":
        value = environ.get("CONTENT_LENGTH")
    else:
        value = environ.get("HTTP_" + name.upper().replace("-", "_"))
    # SigV4's Trimall; werkzeug has already joined repeated headers with ","
    return " ".join(str(value).split()) if value is not None else ""


def _amz_headers(environ: dict[str, Any]) -> list[str]:
    return [key[5:].lower().replace("_", "-") for key in environ if key.startswith("HTTP_X_AMZ_")]


def _verify_digests(environ: dict[str, Any], body: bytes) -> Answer | None:
    checks: dict[str, Callable[[bytes], bytes]] = {
        "SHA256": lambda data: hashlib.sha256(data).digest(),
        "SHA1": lambda data: hashlib.sha1(data).digest(),  # noqa: S324  (S3's checksum, not security)
        "CRC32": lambda data: zlib.crc32(data).to_bytes(4, "big"),
    }
    for algorithm, digest in checks.items():
        sent = environ.get(f"HTTP_X_AMZ_CHECKSUM_{algorithm}")
        if sent is None:
            continue
        try:
            claimed = base64.b64decode(sent.strip(), validate=True)
        except (binascii.Error, ValueError):
            claimed = b""
        if len(claimed) != len(digest(b"")):
            return s3_error(
                400, "InvalidRequest", f"Value for x-amz-checksum-{algorithm.lower()} header is invalid."
            )
        if not hmac.compare_digest(claimed, digest(body)):
            return s3_error(
                400, "BadDigest", f"The {algorithm} you specified did not match the calculated checksum."
            )
    md5 = environ.get("HTTP_CONTENT_MD5")
    if md5 is not None:
        try:
            claimed = base64.b64decode(md5.strip(), validate=True)
        except (binascii.Error, ValueError):
            claimed = b""
        if len(claimed) != 16:
            return s3_error(
                400,
                "InvalidDigest",
                "The Content-MD5 you specified was invalid.",
                **{"Content-MD5": md5[:60]},
            )
        if not hmac.compare_digest(claimed, hashlib.md5(body).digest()):  # noqa: S324
            return s3_error(
                400,
                "BadDigest",
                "The Content-MD5 you specified did not match what we received.",
                ExpectedDigest=md5[:60],
                CalculatedDigest=base64.b64encode(hashlib.md5(body).digest()).decode(),  # noqa: S324
            )
    return None


def _query_error(message: str) -> Answer:
    return s3_error(400, "AuthorizationQueryParametersError", message)


def _drain(environ: dict[str, Any]) -> None:
    """Read a refused request's body (when it is small enough), so that the client, still
    sending it, reads the error instead of a reset connection."""
    try:
        length = declared_length(environ)
        if length is not None and length <= _DRAIN_LIMIT:
            read_body(environ, _DRAIN_LIMIT)
    except BodyError:
        pass


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _hex_bytes(text: str) -> str:
    return " ".join(f"{byte:02x}" for byte in text.encode())
