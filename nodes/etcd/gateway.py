"""etcd's v3 HTTP/JSON gateway (grpc-gateway, on by default in etcd 3.4), the few calls the
lab makes: put, range (linearizable or serializable), a value-compare txn for cas,
maintenance status and member list; and the raft node's status from /debug/vars. Keys
and values travel base64-encoded; 64-bit numbers come back as JSON strings.

One `Gateway` is one keep-alive HTTP connection: not thread-safe, one per thread.
"""

from __future__ import annotations

import base64
import http.client
import json
from typing import Any


class GatewayError(Exception):
    """The call failed. `definite`: etcd said it did not do it (a bad request); otherwise
    the outcome is unknown (a timeout, a lost connection, "request timed out")."""

    def __init__(self, message: str, definite: bool = False) -> None:
        super().__init__(message)
        self.definite = definite


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def unb64(s: str | None) -> str | None:
    return None if s is None else base64.b64decode(s).decode(errors="replace")


class Gateway:
    def __init__(self, host: str, port: int = 2379, timeout: float = 10.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.conn: http.client.HTTPConnection | None = None

    def call(self, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        """POST `body` as JSON to `path` (GET when `body` is None); the decoded answer."""
        payload = None if body is None else json.dumps(body).encode()
        method = "GET" if body is None else "POST"
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, payload, {"Content-Type": "application/json"})
                resp = self.conn.getresponse()
                raw = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                self.close()
                if attempt == 0 and isinstance(e, http.client.RemoteDisconnected):
                    continue  # a keep-alive connection the server closed: not sent
                raise GatewayError(f"{path}: {e!r}") from None
            except (OSError, http.client.HTTPException) as e:
                self.close()
                raise GatewayError(f"{path}: {e!r}") from None
            try:
                doc = json.loads(raw or b"{}")
            except ValueError:
                raise GatewayError(f"{path}: HTTP {resp.status}: {raw[:200]!r}") from None
            if resp.status != 200:
                message = doc.get("error") or doc.get("message") or raw[:200]
                # 400: the gateway refused the request before it reached raft.
                raise GatewayError(f"{path}: HTTP {resp.status}: {message}",
                                   definite=resp.status == 400)  # fmt: skip
            return doc
        raise GatewayError(f"{path}: no answer")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    # -- the operations ------------------------------------------------------------------

    def put(self, key: str, value: str) -> dict[str, Any]:
        return self.call("/v3/kv/put", {"key": b64(key), "value": b64(value)})

    def get(self, key: str, serializable: bool = False) -> tuple[str | None, dict[str, Any]]:
        doc = self.call("/v3/kv/range", {"key": b64(key), "serializable": serializable})
        kvs = doc.get("kvs") or []
        return (unb64(kvs[0].get("value", "")) if kvs else None), doc

    def cas(self, key: str, expected: str | None, value: str) -> tuple[bool, str | None, dict]:
        """Put `value` if `key` holds `expected` (None: if it does not exist). (succeeded,
        the value found, the answer)."""
        if expected is None:
            compare = {"key": b64(key), "target": "CREATE", "result": "EQUAL",
                       "create_revision": "0"}  # fmt: skip
        else:
            compare = {"key": b64(key), "target": "VALUE", "result": "EQUAL",
                       "value": b64(expected)}  # fmt: skip
        doc = self.call("/v3/kv/txn", {
            "compare": [compare],
            "success": [{"request_put": {"key": b64(key), "value": b64(value)}}],
            "failure": [{"request_range": {"key": b64(key)}}],
        })  # fmt: skip
        succeeded = bool(doc.get("succeeded"))
        found: str | None = expected
        if not succeeded:
            found = None
            for r in doc.get("responses") or []:
                kvs = (r.get("response_range") or {}).get("kvs") or []
                if kvs:
                    found = unb64(kvs[0].get("value", ""))
        return succeeded, found, doc

    # -- the lease lock (nodes/etcd/lockrouter.py) ---------------------------------------

    def lease_grant(self, ttl: int) -> int:
        """A new lease of `ttl` seconds; its id."""
        return int(self.call("/v3/lease/grant", {"TTL": ttl})["ID"])

    def lease_keepalive(self, lease: int) -> int:
        """One keep-alive of `lease`: the TTL etcd renewed it to, 0 if it has expired (the
        gateway answers a one-message stream with one result and no TTL)."""
        doc = self.call("/v3/lease/keepalive", {"ID": str(lease)})
        return int((doc.get("result") or {}).get("TTL") or 0)

    def acquire(self, key: str, value: str, lease: int) -> tuple[int | None, str | None]:
        """Create `key` = `value` attached to `lease` if nobody holds it (create_revision
        == 0, the seed's `etcdctl put --lease` made exclusive). (the key's create_revision
        if we created it, else None; the holder's value)."""
        doc = self.call("/v3/kv/txn", {
            "compare": [{"key": b64(key), "target": "CREATE", "result": "EQUAL",
                         "create_revision": "0"}],
            "success": [{"request_put": {"key": b64(key), "value": b64(value),
                                         "lease": str(lease)}}],
            "failure": [{"request_range": {"key": b64(key)}}],
        })  # fmt: skip
        if doc.get("succeeded"):
            return int(doc["header"]["revision"]), value
        for r in doc.get("responses") or []:
            kvs = (r.get("response_range") or {}).get("kvs") or []
            if kvs:
                return None, unb64(kvs[0].get("value", ""))
        return None, None  # it expired between the compare and the range: try again

    def status(self) -> dict[str, Any]:
        return self.call("/v3/maintenance/status", {})

    def raft_status(self) -> dict[str, Any]:
        """etcd's raft.status (expvar at /debug/vars): the raft node's own term, state
        (StateLeader, StateFollower, StateCandidate, StatePreCandidate), lead (hex id),
        commit and applied. The term in /v3/maintenance/status and in every response
        header is the term of the last *applied* entry: a new leader reports the old
        term until its first entry applies, which read as two leaders in one term."""
        doc = self.call("/debug/vars", None).get("raft.status")
        if not isinstance(doc, dict):
            raise GatewayError("/debug/vars has no raft.status")
        return doc

    def members(self) -> dict[str, str]:
        """member id (decimal string) -> name."""
        doc = self.call("/v3/cluster/member/list", {})
        return {str(m.get("ID")): str(m.get("name", "")) for m in doc.get("members") or []}
