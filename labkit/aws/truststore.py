"""The RDS certificate authorities a client trusts on AWS: AWS's published bundle, fetched once into the home.

Every Aurora DB instance presents a certificate signed by one of the RDS certificate authorities (rds-ca-rsa2048-g1,
rds-ca-rsa4096-g1, rds-ca-ecc384-g1); the global bundle holds all of them for every commercial region (Aurora User
Guide, "Using SSL/TLS to encrypt a connection to a DB cluster": download
https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem). labkit fetches it over HTTPS (verified against
the system's own trust store) on first use, checks it is PEM certificates, and keeps it in the home (`CACHE`); a
later call reads the file. Regions of the other partitions publish their own bundles at addresses no source checked
here confirms: there LABKIT_RDS_CA_BUNDLE names a bundle the learner downloaded, and the message says so.
"""

from __future__ import annotations

import os
import ssl
import urllib.error
import urllib.request
from pathlib import Path

from labkit.errors import LabkitError
from labkit.home import labkit_home, private_dir, write_durably

GLOBAL_BUNDLE = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"  # the instance's too: app/userdata
BUNDLES = {"aws": GLOBAL_BUNDLE}  # by partition: only the one AWS's guide names here
BUNDLE_ENV = "LABKIT_RDS_CA_BUNDLE"  # a bundle file of the learner's own (another partition, an offline machine)
CACHE = Path("tls") / "rds-global-bundle.pem"  # under the home
MAX_BYTES = 1 << 20  # the bundle is about 160 KB; anything far larger is not it
PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"


def rds_ca_bundle(partition: str = "aws", *, url: str | None = None, home: Path | None = None) -> Path:
    """The file of RDS CA certificates to verify Aurora's servers with: LABKIT_RDS_CA_BUNDLE when set, else the
    home's copy of AWS's bundle, fetched from `url` (the partition's) when missing."""
    chosen = os.environ.get(BUNDLE_ENV, "").strip()
    if chosen:
        path = Path(chosen).expanduser()
        if not _is_bundle(path):
            raise LabkitError(
                f"{BUNDLE_ENV}={chosen} is not a file of PEM certificates",
                field=BUNDLE_ENV,
                fix=f"point it at the RDS certificate bundle you downloaded, or unset it to use {GLOBAL_BUNDLE}",
            )
        return path
    cached = (home or labkit_home()) / CACHE
    if _is_bundle(cached):
        return cached
    source = url or BUNDLES.get(partition)
    if source is None:
        raise LabkitError(
            f"labkit knows no RDS certificate bundle address for the {partition} partition",
            field=BUNDLE_ENV,
            fix=f"download your partition's RDS certificate bundle (the Aurora User Guide of your partition, 'Using "
            f"SSL/TLS to encrypt a connection to a DB cluster') and set {BUNDLE_ENV} to its path",
        )
    data = _download(source)
    private_dir(cached.parent)
    write_durably(cached, data)
    return cached


def _download(url: str) -> bytes:
    """The bundle at `url`, over HTTPS verified by the system's trust store (or a loopback test server)."""
    try:
        with urllib.request.urlopen(url, timeout=20, context=ssl.create_default_context()) as answer:
            data: bytes = answer.read(MAX_BYTES + 1)
    except (urllib.error.URLError, OSError) as exc:
        raise LabkitError(
            f"could not download the RDS certificate bundle from {url}: {getattr(exc, 'reason', exc)}",
            field="tls",
            fix=f"check this machine reaches {url} (a proxy, a firewall), or download it yourself and set "
            f"{BUNDLE_ENV} to its path",
        ) from None
    if len(data) > MAX_BYTES or PEM_BEGIN not in data:
        raise LabkitError(
            f"{url} did not answer with a bundle of PEM certificates",
            field="tls",
            fix=f"download it yourself, check it starts with {PEM_BEGIN.decode()}, and set {BUNDLE_ENV} to its path",
        )
    return data


def _is_bundle(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return PEM_BEGIN in handle.read(MAX_BYTES)
    except OSError:
        return False
