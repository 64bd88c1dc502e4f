"""The sandbox's own credentials, and the check that every request to its API is signed with them.

On a shared machine (a class on one JupyterHub) every learner's sandbox listens on a loopback port that any
local user can reach. Without a credential check, learner B could read learner A's master password from
Secrets Manager, or delete A's cluster. So each LABKIT home has an access key pair of its own (generated on
first use, in a 0600 file only its owner can read), every labkit client signs with it (SigV4, as boto3 signs
for AWS), and the daemon answers only requests whose signature it recomputes, with botocore, from that key:
anything else is refused as AWS refuses it (a bad signature, an unknown key, no signature, a stale date), in
the wire format of the service that was called. moto's admin API (/moto-api/: reset, the whole account as
JSON) is behind the same check.

Runs in the daemon (`SignedRequestsOnly`, WSGI middleware in front of everything) and in every client of the
sandbox (`home_credentials`, `signed_request`): the learner's kernel and CLI, the session plugin, the app hosts.
"""

from __future__ import annotations

import base64
import configparser
import contextlib
import hmac
import io
import json
import os
import re
import secrets
import threading
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from pathlib import Path
from typing import Any
from urllib.parse import quote

CREDENTIALS_FILE = "sandbox.credentials"  # in the LABKIT home, AWS's shared-credentials format, mode 0600
PROFILE = "labkit-sandbox"  # its one profile: `labkit sandbox env` points AWS_PROFILE at it
MAX_SKEW = timedelta(minutes=15)  # AWS refuses a request signed more than 15 minutes before or after now
ADMIN_SERVICE = "moto-api"  # the credential scope labkit signs moto's admin calls with
PING_PATH = "/labkit/ping"  # answered here once the signature checks: the health check, cheap under any load
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<key>[^/\s,]+)/(?P<date>\d{8})/(?P<region>[^/\s,]+)/(?P<service>[^/\s,]+)"
    r"/aws4_request\s*,\s*SignedHeaders=(?P<headers>[a-z0-9;_.-]+)\s*,\s*Signature=(?P<signature>[0-9a-f]{64})\s*$"
)


@dataclass(frozen=True)
class SandboxCredentials:
    """One home's access key pair; the secret never appears in a repr, a log or an output."""

    access_key_id: str
    secret_access_key: str
    path: Path

    def __repr__(self) -> str:
        return f"<sandbox credentials {self.access_key_id} in {self.path}>"

    def for_boto3(self) -> dict[str, str]:
        """Keyword arguments for boto3.Session."""
        return {"aws_access_key_id": self.access_key_id, "aws_secret_access_key": self.secret_access_key}

    def for_environment(self) -> dict[str, str]:
        """Environment variables that make boto3 and the AWS CLI sign with this pair: the 0600 file and its
        profile, never the secret itself (it would show in `ps e`, a notebook's output or a shell's history).
        The key variables are set empty so that credentials already in the environment cannot win over the
        profile (botocore's environment provider skips an empty key)."""
        return {
            "AWS_SHARED_CREDENTIALS_FILE": str(self.path),
            "AWS_PROFILE": PROFILE,
            "AWS_ACCESS_KEY_ID": "",
            "AWS_SECRET_ACCESS_KEY": "",
            "AWS_SESSION_TOKEN": "",
        }


def credentials_path(home: Path) -> Path:
    return home / CREDENTIALS_FILE


def home_credentials(home: Path) -> SandboxCredentials:
    """This home's key pair, made on first use: created 0600 under a temporary name and linked into place, so a
    concurrent reader sees a whole file or none, and two first uses agree on one pair."""
    path = credentials_path(home)
    if not path.exists():
        _create(path)
    return _read(path)


def _create(path: Path) -> None:
    key_id = "AKIA" + base64.b32encode(secrets.token_bytes(10)).decode()  # AWS's shape: AKIA + 16 of A-Z2-7
    secret = secrets.token_urlsafe(30)  # 40 characters, as AWS's secrets are
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(
                "# labkit: this LABKIT home's sandbox credentials (its AWS API answers only these); keep private\n"
                f"[{PROFILE}]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n"
            )
        with contextlib.suppress(FileExistsError):  # another process made the pair first: theirs stands
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read(path: Path) -> SandboxCredentials:
    from labkit.errors import SandboxError  # start-up time of the session plugin: only on this path

    if path.stat().st_mode & 0o077:
        path.chmod(0o600)  # a copied or restored file: the owner's only again
    parser = configparser.ConfigParser()
    try:
        parser.read_string(path.read_text())
        section = parser[PROFILE]
        return SandboxCredentials(section["aws_access_key_id"], section["aws_secret_access_key"], path)
    except (configparser.Error, KeyError) as exc:
        raise SandboxError(
            f"{path} does not hold the sandbox's credentials ({exc})",
            field="sandbox credentials",
            fix=f"stop the sandbox (`labkit sandbox down`), delete {path} (a new pair is made), and start it again",
        ) from None


# ---- the client side: moto's admin API, which boto3 does not call --------------------------------------


def signed_request(url: str, credentials: SandboxCredentials, method: str = "GET", data: bytes = b"") -> Any:
    """A urllib Request for the sandbox's admin API, signed as boto3 signs an AWS call."""
    from botocore.auth import SigV4Auth  # botocore loads when signing: the session plugin imports this module light
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=url, data=data)
    SigV4Auth(
        Credentials(credentials.access_key_id, credentials.secret_access_key), ADMIN_SERVICE, "us-east-1"
    ).add_auth(request)
    return urllib.request.Request(
        url, data=data if method != "GET" else None, method=method, headers=dict(request.headers)
    )


# ---- the daemon side -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused, as AWS words it: the error of the query protocol, of the JSON protocol, EC2's."""

    query_code: str
    json_code: str
    message: str


MISSING = Refusal(
    "MissingAuthenticationToken",
    "MissingAuthenticationTokenException",
    "Request is missing Authentication Token",
)
UNKNOWN_KEY = Refusal(
    "InvalidClientTokenId", "UnrecognizedClientException", "The security token included in the request is invalid."
)
BAD_SIGNATURE = Refusal(
    "SignatureDoesNotMatch",
    "InvalidSignatureException",
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
)
SANDBOX_HINT = (
    " (labkit sandbox: sign with this LABKIT home's own credentials; "
    '`eval "$(labkit sandbox env)"` points the AWS CLI and boto3 at them)'
)


class SignedRequestsOnly:
    """WSGI middleware: pass on only requests signed (SigV4) with this home's key pair; refuse the rest."""

    def __init__(self, app: Any, home: Path) -> None:
        self.app = app
        self.path = credentials_path(home)
        self.credentials = home_credentials(home)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        body = read_body(environ)
        refusal = self.check(environ, body)
        if refusal is not None:
            return _refuse(environ, start_response, refusal)
        if environ.get("PATH_INFO") == PING_PATH:  # not moto's dashboard, which can take seconds during warm-up
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
            return [b"ok\n"]
        return self.app(environ, start_response)

    def check(self, environ: dict[str, Any], body: bytes, now: datetime | None = None) -> Refusal | None:
        """None when the request is signed with this home's key pair, else why not."""
        auth = _AUTHORIZATION.match(environ.get("HTTP_AUTHORIZATION", "").strip())
        if auth is None:
            return MISSING
        secret = self._secret_for(auth["key"])
        if secret is None:
            return UNKNOWN_KEY
        stamp = environ.get("HTTP_X_AMZ_DATE", "")
        try:
            signed_at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            return BAD_SIGNATURE
        now = now or datetime.now(UTC)
        if abs(now - signed_at) > MAX_SKEW:
            earliest = (now - MAX_SKEW).strftime("%Y%m%dT%H%M%SZ")
            return Refusal(
                BAD_SIGNATURE.query_code,
                BAD_SIGNATURE.json_code,
                f"Signature expired: {stamp} is now earlier than {earliest} "
                f"({now.strftime('%Y%m%dT%H%M%SZ')} - 15 min.)",
            )
        claimed_hash = environ.get("HTTP_X_AMZ_CONTENT_SHA256")
        if claimed_hash is not None and not hmac.compare_digest(claimed_hash, sha256(body).hexdigest()):
            return BAD_SIGNATURE  # an unsigned or mismatched payload: the signature would not cover the body
        expected = expected_signature(environ, body, auth, secret, stamp)
        if expected is None or not hmac.compare_digest(expected, auth["signature"]):
            return BAD_SIGNATURE
        return None

    def _secret_for(self, key_id: str) -> str | None:
        if not hmac.compare_digest(key_id, self.credentials.access_key_id):
            with contextlib.suppress(OSError, ValueError):
                if self.path.exists():  # the pair was made anew while the daemon ran (a deleted file)
                    self.credentials = _read(self.path)
            if not hmac.compare_digest(key_id, self.credentials.access_key_id):
                return None
        return self.credentials.secret_access_key


def expected_signature(
    environ: dict[str, Any], body: bytes, auth: re.Match[str], secret: str, stamp: str
) -> str | None:
    """The signature botocore computes for this request as received, with the claimed scope and headers and
    `secret`; None when a header it claims to have signed is missing."""
    from botocore.auth import SigV4Auth  # botocore loads when checking a signature, as above
    from botocore.awsrequest import AWSRequest, HTTPHeaders
    from botocore.credentials import Credentials

    signed_names = auth["headers"].split(";")
    headers = HTTPHeaders()
    for name in signed_names:
        value = _header(environ, name)
        if value is None:
            return None
        headers[name] = value

    class Recompute(SigV4Auth):
        def headers_to_sign(self, request: Any) -> Any:
            return headers  # exactly the ones the client listed, with the values that arrived

    path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or _quoted_path(environ)
    url = f"http://{environ.get('HTTP_HOST', 'localhost')}{path}"
    request = AWSRequest(method=environ.get("REQUEST_METHOD", "GET"), url=url, data=body)
    request.context["timestamp"] = stamp
    if environ.get("HTTP_X_AMZ_CONTENT_SHA256"):
        request.headers["X-Amz-Content-SHA256"] = environ["HTTP_X_AMZ_CONTENT_SHA256"]
    if stamp[:8] != auth["date"]:
        return None  # the scope's date must be the signing date
    signer = Recompute(Credentials(auth["key"], secret), auth["service"], auth["region"])
    return str(signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request))


def _header(environ: dict[str, Any], name: str) -> str | None:
    if name == "content-type":
        return environ.get("CONTENT_TYPE")
    if name == "content-length":
        return environ.get("CONTENT_LENGTH")
    return environ.get("HTTP_" + name.upper().replace("-", "_"))


def _quoted_path(environ: dict[str, Any]) -> str:
    path = quote(environ.get("PATH_INFO", "/"), safe="/~!$&'()*+,;=:@%")
    query = environ.get("QUERY_STRING")
    return f"{path}?{query}" if query else path


def read_body(environ: dict[str, Any]) -> bytes:
    """The request body, read once and put back for the application behind."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _refuse(environ: dict[str, Any], start_response: Any, refusal: Refusal) -> list[bytes]:
    """AWS's answer to an unauthenticated request, in the caller's protocol: JSON (SSM, Secrets Manager, the
    tagging API), EC2's XML (AuthFailure, HTTP 401), or the query protocol's XML (STS, IAM, RDS: HTTP 403)."""
    request_id = str(secrets.token_hex(16))
    message = refusal.message + SANDBOX_HINT
    scope = _AUTHORIZATION.match(environ.get("HTTP_AUTHORIZATION", "").strip())
    service = scope["service"] if scope else ""
    if environ.get("HTTP_X_AMZ_TARGET") or "json" in environ.get("CONTENT_TYPE", "") or service == ADMIN_SERVICE:
        status = "400 Bad Request" if refusal is not MISSING else "403 Forbidden"
        body = json.dumps({"__type": refusal.json_code, "message": message}).encode()
        headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", refusal.json_code)]
    elif service == "ec2" or "Version=2016-11-15" in environ.get("QUERY_STRING", ""):
        status = "401 Unauthorized"
        body = (
            "<Response><Errors><Error><Code>AuthFailure</Code><Message>AWS was not able to validate the provided "
            f"access credentials{_xml(SANDBOX_HINT)}</Message></Error></Errors><RequestID>{request_id}</RequestID>"
            "</Response>"
        ).encode()
        headers = [("Content-Type", "text/xml")]
    else:
        status = "403 Forbidden"
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{refusal.query_code}</Code>"
            f"<Message>{_xml(message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        headers = [("Content-Type", "text/xml")]
    start_response(status, [*headers, ("Content-Length", str(len(body))), ("x-amzn-RequestId", request_id)])
    return [body]


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
