"""Who may log on: salted password hashes (scrypt), per-session address allow-lists.

FIX 4.2 has no Username(553)/Password(554) (QuickFIX drops a 4.2 Logon carrying them), so FIX 4.2
sessions are authenticated by CompID plus a required source-address allow-list.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

_N, _R, _P = 2**14, 8, 1  # scrypt cost: ~20 ms a check here, paid once per logon


def hash_password(password: str, salt: bytes | None = None) -> tuple[str, str]:
    salt = salt or secrets.token_bytes(16)
    # surrogateescape: bytes that are not UTF-8 still hash (and simply do not match), never raise
    digest = hashlib.scrypt(password.encode("utf-8", "surrogateescape"), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return salt.hex(), digest.hex()


def verify_password(password: str, salt_hex: str, hash_hex: str) -> bool:
    _, digest = hash_password(password, bytes.fromhex(salt_hex))
    return hmac.compare_digest(digest, hash_hex)


@dataclass(frozen=True, slots=True)
class Credential:
    comp_id: str
    username: str
    salt: str
    hash: str
    allowed_addresses: frozenset[str] = frozenset()


class Authenticator:
    def __init__(self, credentials: dict[str, Credential], require_auth: bool = True) -> None:
        self.credentials = dict(credentials)
        self.require_auth = require_auth

    def check_logon(self, comp_id: str, begin_string: str, username: str | None, password: str | None,
                    address: str | None) -> str | None:
        """None if the logon may proceed, else the reason (sent in the Logout's Text)."""
        cred = self.credentials.get(comp_id)
        if cred is None:
            return f"no credentials configured for {comp_id}" if self.require_auth else None
        if cred.allowed_addresses and address not in cred.allowed_addresses:
            return f"logon from address {address or 'unknown'} not allowed for {comp_id}"
        if begin_string == "FIX.4.2":
            if not cred.allowed_addresses:
                return f"FIX 4.2 session {comp_id} needs an address allow-list (no Username/Password in 4.2)"
            return None
        if not username or not password:
            return "Username(553) and Password(554) required"
        if username != cred.username or not verify_password(password, cred.salt, cred.hash):
            return "invalid username or password"
        return None
