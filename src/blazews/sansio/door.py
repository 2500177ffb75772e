"""What a server checks at its door, before ``process_request``: who and where.

:class:`BasicAuth` is HTTP Basic authentication (RFC 7617) of the opening handshake;
:class:`Router` maps request paths (``/chat``, ``/feed/{id}``) to handlers. Both are
sans-I/O: the header parsing, the path matching and every answer (400, 401, 404) are
decided here, once for every front end; a front end only calls :meth:`Door.verify`
(and awaits what it returns, on asyncio, when the check function is a coroutine).

A front end runs the door in three steps::

    admission = door.admit(request)        # parse, match: maybe a refusal already
    ok = door.verify(admission)            # the password check (may be awaitable)
    refusal = door.decide(admission, ok)   # None: in, with admission's user and route

Order: a request without valid credentials gets 401 (or 400 for a malformed
``Authorization`` header) before its path is looked at, so an unauthenticated client
learns nothing about the routes; an authenticated one gets 404 for an unknown path.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, TypeVar
from urllib.parse import unquote

from .handshake import reject_response
from .http11 import Request, Response

__all__ = ["NO_PARAMS", "Admission", "BasicAuth", "Door", "PasswordCheck", "Router"]

T = TypeVar("T")

PasswordCheck = Callable[[str, str], "bool | Awaitable[bool]"]
"""``check(username, password)``: whether to let the client in (may be a coroutine
function on asyncio)."""

NO_PARAMS: Mapping[str, str] = MappingProxyType({})
"""The path parameters of a connection served without a :class:`Router` (shared)."""

_REALM_BAD = re.compile(r'["\\\x00-\x1f\x7f]')
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _digest(password: str) -> bytes:
    return hashlib.sha256(password.encode("utf-8")).digest()


class BasicAuth:
    """HTTP Basic authentication of the opening handshake (RFC 7617).

    Give the ``basic_auth=`` server option one of these. A client without valid
    credentials gets 401 with ``WWW-Authenticate: Basic realm="..."``; a malformed
    ``Authorization`` header gets 400. The user name of an admitted client is the
    connection's ``username``.

    Args:
        realm: The protection space the browser shows (no quotes, backslashes or
            control characters).
        credentials: User names and their passwords. Passwords are compared in
            constant time (``hmac.compare_digest`` of their SHA-256 digests, so the
            time tells neither how much of a password matched nor its length).
        check: Instead of ``credentials``: ``check(username, password)`` returns
            whether to let the client in; on asyncio it may be a coroutine function
            (a database lookup). It should compare secrets with
            :func:`hmac.compare_digest`.

    Raises:
        ValueError: Neither or both of ``credentials`` and ``check``, or a bad realm.
        TypeError: ``check`` is not callable, or a user name or password is not a str.
    """

    __slots__ = ("_check", "_credentials", "_dummy", "realm")

    def __init__(
        self,
        realm: str,
        credentials: Mapping[str, str] | None = None,
        *,
        check: PasswordCheck | None = None,
    ) -> None:
        if not isinstance(realm, str) or _REALM_BAD.search(realm):
            raise ValueError(f"realm must be a str without quotes or controls, not {realm!r}")
        if (credentials is None) == (check is None):
            raise ValueError("give BasicAuth either credentials or check")
        if check is not None and not callable(check):
            raise TypeError(f"check must be callable, not {check!r}")
        self.realm = realm
        self._check = check
        self._credentials: dict[str, bytes] = {}
        for user, password in (credentials or {}).items():
            if not isinstance(user, str) or not isinstance(password, str):
                raise TypeError("credentials must map str user names to str passwords")
            if ":" in user:
                raise ValueError(f"a user name may not contain ':', not {user!r}")
            self._credentials[user] = _digest(password)
        self._dummy = _digest("\x00 no such user")

    @property
    def may_wait(self) -> bool:
        """Whether :meth:`verify` may return an awaitable (a check function is used)."""
        return self._check is not None

    def credentials_of(self, request: Request) -> tuple[str, str] | Response:
        """The user name and password a request carries, or the answer refusing it.

        Returns:
            ``(username, password)``; or a 401 (no ``Authorization`` header, or
            another scheme) or 400 (several headers, bad base64 or UTF-8, no colon).
        """
        values = request.headers.get_all("Authorization")
        if not values:
            return self.challenge()
        if len(values) > 1:
            return self._malformed("more than one Authorization header")
        scheme, _, token = values[0].strip().partition(" ")
        if scheme.lower() != "basic":
            return self.challenge()
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return self._malformed("invalid Basic credentials")
        username, colon, password = decoded.partition(":")
        if not colon:
            return self._malformed("invalid Basic credentials: no colon")
        return username, password

    def verify(self, username: str, password: str) -> bool | Awaitable[bool]:
        """Whether these credentials let the client in (an awaitable of it, with an
        asynchronous ``check``)."""
        if self._check is not None:
            return self._check(username, password)
        expected = self._credentials.get(username)
        given = _digest(password)
        if expected is None:
            hmac.compare_digest(given, self._dummy)  # the same work for unknown users
            return False
        return hmac.compare_digest(given, expected)

    def challenge(self) -> Response:
        """The 401 response asking for credentials."""
        header = f'Basic realm="{self.realm}", charset="UTF-8"'
        return reject_response(401, "Authentication required.\n", [("WWW-Authenticate", header)])

    def _malformed(self, why: str) -> Response:
        return reject_response(400, f"Failed to open a WebSocket connection: {why}.\n")

    def __repr__(self) -> str:
        how = "check" if self._check is not None else f"{len(self._credentials)} users"
        return f"BasicAuth(realm={self.realm!r}, {how})"


class Router(Generic[T]):
    """Routes by request path: one server, several handlers.

    Pass a router where a server takes its handler: ``serve(Router({...}), ...)``
    (coroutine handlers), ``serve_listener(Router({...}), ...)`` (Listener factories),
    ``sync.serve(Router({...}), ...)`` (blocking handlers). A request whose path
    matches no route gets 404 during the handshake; a matched connection gets its
    route's handler, and its ``path_params``.

    Args:
        routes: Path patterns and their targets. A pattern starts with ``/``; a
            segment ``{name}`` matches one non-empty path segment and becomes
            ``path_params[name]``, percent-decoded. The query string is not matched.
            Patterns without parameters are found first, then the others in order.

    Raises:
        ValueError: A pattern that does not start with ``/``, repeats a parameter
            name, or puts ``{name}`` beside other text in a segment.
    """

    __slots__ = ("_exact", "_patterns", "routes")

    def __init__(self, routes: Mapping[str, T]) -> None:
        self.routes = dict(routes)
        self._exact: dict[str, T] = {}
        self._patterns: list[tuple[re.Pattern[str], T]] = []
        for pattern, target in self.routes.items():
            if not isinstance(pattern, str) or not pattern.startswith("/"):
                raise ValueError(f"a route must be a path starting with '/', not {pattern!r}")
            if "{" not in pattern and "}" not in pattern:
                self._exact[pattern] = target
                continue
            parts = []
            names: set[str] = set()
            for segment in pattern.split("/"):
                found = _PARAM.fullmatch(segment)
                if found is None:
                    if "{" in segment or "}" in segment:
                        raise ValueError(f"a parameter must be a whole segment: {pattern!r}")
                    parts.append(re.escape(segment))
                    continue
                name = found.group(1)
                if name in names:
                    raise ValueError(f"parameter {name!r} repeated in {pattern!r}")
                names.add(name)
                parts.append(f"(?P<{name}>[^/]+)")
            self._patterns.append((re.compile("/".join(parts)), target))

    def match(self, path: str) -> tuple[T, dict[str, str]] | None:
        """The target of a request path and its parameters, or ``None``.

        Args:
            path: The request target, e.g. ``/feed/42?since=7``.
        """
        path = path.partition("?")[0]
        if path in self._exact:
            return self._exact[path], {}
        for regex, target in self._patterns:
            found = regex.fullmatch(path)
            if found is not None:
                return target, {k: unquote(v) for k, v in found.groupdict().items()}
        return None

    def __repr__(self) -> str:
        return f"Router({list(self.routes)!r})"


@dataclass
class Admission:
    """What :meth:`Door.admit` found out about a request.

    Attributes:
        refusal: The response refusing the request already (400, 401, 404), if any.
        username: The user name given (with ``basic_auth``), ``None`` otherwise.
        password: The password given, to verify.
        routed: Whether a route matched (always, without a router).
        target: The matched route's target (``None`` without a router).
        path_params: The matched route's parameters.
    """

    refusal: Response | None = None
    username: str | None = None
    password: str = field(default="", repr=False)
    routed: bool = True
    target: Any = None
    path_params: Mapping[str, str] = field(default_factory=lambda: NO_PARAMS)


class Door:
    """A server's checks before ``process_request``: basic auth, then routing.

    Args:
        basic_auth: The :class:`BasicAuth` policy, or ``None``.
        router: The :class:`Router`, or ``None``.
    """

    __slots__ = ("basic_auth", "router")

    def __init__(self, basic_auth: BasicAuth | None, router: Router[Any] | None) -> None:
        self.basic_auth = basic_auth
        self.router = router

    @property
    def may_wait(self) -> bool:
        """Whether :meth:`verify` may return an awaitable."""
        return self.basic_auth is not None and self.basic_auth.may_wait

    def admit(self, request: Request) -> Admission:
        """Parse the credentials and match the path (nothing verified yet)."""
        admission = Admission()
        if self.basic_auth is not None:
            found = self.basic_auth.credentials_of(request)
            if isinstance(found, Response):
                admission.refusal = found
                return admission
            admission.username, admission.password = found
        if self.router is not None:
            match = self.router.match(request.path)
            if match is None:
                admission.routed = False
                if self.basic_auth is None:
                    admission.refusal = self._not_found()
            else:
                admission.target, admission.path_params = match
        return admission

    def verify(self, admission: Admission) -> bool | Awaitable[bool]:
        """Whether the admission's credentials are good (``True`` without
        ``basic_auth``); an awaitable of it with an asynchronous check."""
        if self.basic_auth is None or admission.username is None:
            return True
        return self.basic_auth.verify(admission.username, admission.password)

    def decide(self, admission: Admission, ok: bool) -> Response | None:
        """The refusal of a request (401, 404, or the one :meth:`admit` made), or
        ``None`` to let it in, given what :meth:`verify` said."""
        admission.password = ""  # not kept past the decision
        if admission.refusal is not None:
            return admission.refusal
        if not ok:
            assert self.basic_auth is not None
            return self.basic_auth.challenge()
        if not admission.routed:
            return self._not_found()
        return None

    def _not_found(self) -> Response:
        return reject_response(404, "No WebSocket endpoint at this path.\n")
