"""Remove secrets from anything that gets printed or logged."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:@/\s]*):(?P<password>[^@/\s]*)@", re.I)


def mask_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``.

    Query parameters named like a password are masked too, since redis-py also
    accepts ``?password=``.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return mask_text(url)
    netloc = parts.netloc
    if parts.password is not None:
        user = parts.username or ""
        host = netloc.rpartition("@")[2]
        netloc = f"{user}:***@{host}"
    query = re.sub(r"(?i)((?:password|auth|token)=)[^&]*", r"\1***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask_text(text: str) -> str:
    """Mask every ``scheme://user:password@`` credential inside free text."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
