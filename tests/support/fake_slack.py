"""A local Slack Web API: records every call and answers like Slack, over real HTTP.

Use it through the real ``slack_sdk.WebClient(base_url=fake.api_url)`` (``SLACK_API_URL``).
It also accepts ``response_url`` posts (``fake.response_url(name)``) and file uploads, and
answers ``apps.connections.open`` with the websocket of :class:`FakeSocketMode`.
"""

from __future__ import annotations

import itertools
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlparse

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

BOT_USER = "UBOT"


@dataclass
class Call:
    """One request the fake received."""

    method: str
    args: dict[str, Any]
    token: str | None = None


@dataclass
class FakeSlackState:
    """What the fake Slack workspace holds."""

    usergroups: dict[str, list[str]] = field(default_factory=dict)
    channels: dict[str, str] = field(default_factory=dict)  # name → id
    # "channel/ts" → message; a thread reply carries its parent's ts as "thread_ts"
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    failing: dict[str, str] = field(default_factory=dict)  # method → Slack error code
    uninvitable: dict[str, str] = field(default_factory=dict)  # user → why Slack refuses them
    members: dict[str, list[str]] = field(default_factory=dict)  # channel id → invited users


class FakeSlack:
    """The server; start with :func:`running_fake_slack`."""

    def __init__(self) -> None:
        self.state = FakeSlackState()
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.api_url = f"{self.base_url}/api/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._socket_mode: FakeSocketMode | None = None

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        if self._socket_mode is not None:
            self._socket_mode.stop()

    @property
    def socket_mode(self) -> FakeSocketMode:
        """The Socket Mode websocket, started on first use."""
        with self._lock:
            if self._socket_mode is None:
                self._socket_mode = FakeSocketMode()
            return self._socket_mode

    def response_url(self, name: str = "r") -> str:
        """A response_url whose posts are recorded as method ``response_url``."""
        return f"{self.base_url}/response/{name}"

    def calls_to(self, method: str) -> list[Call]:
        """The recorded calls to one method, in order."""
        with self._lock:
            return [call for call in self.calls if call.method == method]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10) -> bool:
        """Poll until ``predicate`` holds (listeners finish after their ack)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return predicate()

    def replies(self) -> list[str]:
        """Texts of every ephemeral reply (response_url posts and chat.postEphemeral)."""
        texts = [str(c.args.get("text", "")) for c in self.calls_to("response_url")]
        return texts + [str(c.args.get("text", "")) for c in self.calls_to("chat.postEphemeral")]

    def replies_to(self, name: str) -> list[str]:
        """Texts posted to one ``response_url(name)``."""
        return [
            str(c.args.get("text", ""))
            for c in self.calls_to("response_url")
            if c.args["_name"] == name
        ]

    def reply_to(self, name: str, timeout: float = 10) -> str:
        """The first text posted to ``response_url(name)``, waiting for it."""
        if not self.wait_for(lambda: bool(self.replies_to(name)), timeout):
            raise AssertionError(f"no reply at response_url {name!r}; calls: {self.calls}")
        return self.replies_to(name)[0]

    def _record(self, method: str, args: dict[str, Any], token: str | None) -> None:
        with self._lock:
            self.calls.append(Call(method, args, token))

    def _next(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}"

    def answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        """Slack's answer to one API call."""
        if method in self.state.failing:
            return {"ok": False, "error": self.state.failing[method]}
        handler = getattr(self, "_api_" + method.replace(".", "_"), None)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        result: dict[str, Any] = handler(args)
        return result

    def _api_auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "team_id": "T1", "user_id": BOT_USER, "bot_id": "B1", "team": "acme"}

    def _api_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args["channel"])
        ts = f"{time.time():.6f}"
        message = {"ts": ts, "text": args.get("text", ""), "blocks": args.get("blocks")}
        if args.get("thread_ts"):
            message["thread_ts"] = args["thread_ts"]
        self.state.messages[f"{channel}/{ts}"] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _api_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        key = f"{args['channel']}/{args['ts']}"
        if key not in self.state.messages:
            return {"ok": False, "error": "message_not_found"}
        self.state.messages[key].update(text=args.get("text", ""), blocks=args.get("blocks"))
        return {"ok": True, "channel": args["channel"], "ts": args["ts"]}

    def _api_chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "message_ts": f"{time.time():.6f}"}

    def _api_chat_getPermalink(self, args: dict[str, Any]) -> dict[str, Any]:
        link = f"https://acme.slack.com/archives/{args['channel']}/p{args['message_ts']}"
        return {"ok": True, "channel": args["channel"], "permalink": link}

    def _api_conversations_create(self, args: dict[str, Any]) -> dict[str, Any]:
        name = str(args["name"])
        if name in self.state.channels:
            return {"ok": False, "error": "name_taken"}
        channel_id = self._next("C")
        self.state.channels[name] = channel_id
        return {"ok": True, "channel": {"id": channel_id, "name": name}}

    def _api_conversations_invite(self, args: dict[str, Any]) -> dict[str, Any]:
        """One refused user keeps everyone out, unless ``force``: then the others are in.
        Either way the answer is an error listing the refusals."""
        channel, users = str(args["channel"]), str(args["users"]).split(",")
        refused = [
            {"user": user, "ok": False, "error": self.state.uninvitable[user]}
            for user in users
            if user in self.state.uninvitable
        ]
        if not refused or str(args.get("force", "")).lower() in ("1", "true"):
            members = self.state.members.setdefault(channel, [])
            members.extend(u for u in users if u not in self.state.uninvitable and u not in members)
        if refused:
            return {"ok": False, "error": refused[0]["error"], "errors": refused}
        return {"ok": True, "channel": {"id": channel}}

    def _api_conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        """Top-level messages only (no thread replies) between oldest and latest, newest first."""
        found = [
            m
            for m in _in_range(self._messages_in(str(args["channel"])), args)
            if m.get("thread_ts", m["ts"]) == m["ts"]
        ]
        found.sort(key=lambda m: Decimal(m["ts"]), reverse=True)
        limit = int(args.get("limit") or 100)
        return {"ok": True, "messages": found[:limit], "has_more": len(found) > limit}

    def _api_conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        """The thread ``ts`` is in (``ts`` is its parent or any reply): the parent, always
        first, then the replies between oldest and latest, oldest first."""
        channel = str(args["channel"])
        message = self.state.messages.get(f"{channel}/{args['ts']}")
        if message is None:
            return {"ok": False, "error": "thread_not_found"}
        parent_ts = message.get("thread_ts", message["ts"])
        parent = self.state.messages[f"{channel}/{parent_ts}"]
        replies = [
            m
            for m in _in_range(self._messages_in(channel), args)
            if m.get("thread_ts") == parent_ts and m["ts"] != parent_ts
        ]
        replies.sort(key=lambda m: Decimal(m["ts"]))
        limit = int(args.get("limit") or 1000)
        found = [parent, *replies]
        return {"ok": True, "messages": found[:limit], "has_more": len(found) > limit}

    def _messages_in(self, channel: str) -> list[dict[str, Any]]:
        prefix = f"{channel}/"
        return [m for key, m in self.state.messages.items() if key.startswith(prefix)]

    def _api_usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        group = str(args["usergroup"])
        if group not in self.state.usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(self.state.usergroups[group])}

    def _api_apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": self.socket_mode.url}

    def _api_views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "view": {"id": self._next("V")}}

    def _api_reactions_add(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True}

    def _api_files_getUploadURLExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        file_id = self._next("F")
        return {"ok": True, "upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    def _api_files_completeUploadExternal(self, args: dict[str, Any]) -> dict[str, Any]:
        files = json.loads(args.get("files", "[]"))
        return {"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in files]}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                del format, args  # quiet: tests read fake.calls instead

            def do_POST(self) -> None:
                path = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if path.path.startswith("/upload/"):
                    fake._record(
                        "upload", {"file": path.path.rsplit("/", 1)[1], "size": len(raw)}, None
                    )
                    self._send(200, b"OK", "text/plain")
                    return
                args = dict(parse_qsl(path.query))
                args.update(_parse_body(raw, self.headers.get("Content-Type", "")))
                if path.path.startswith("/response/"):
                    name = path.path.removeprefix("/response/")
                    fake._record("response_url", {**args, "_name": name}, None)
                    self._send(200, b"ok", "text/plain")
                    return
                method = path.path.removeprefix("/api/")
                auth = self.headers.get("Authorization", "")
                token = auth.removeprefix("Bearer ") or args.get("token")
                fake._record(method, args, token)
                body = json.dumps(fake.answer(method, args)).encode()
                self._send(200, body, "application/json")

            do_GET = do_POST

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


class FakeSocketMode:
    """Slack's Socket Mode end: says hello, sends queued envelopes, records the acks."""

    def __init__(self) -> None:
        self.acks: list[dict[str, Any]] = []
        self._outbox: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._server = serve(self._session, "127.0.0.1", 0)
        self.url = f"ws://127.0.0.1:{self._server.socket.getsockname()[1]}/link"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def send(self, envelope: dict[str, Any]) -> None:
        """Deliver an envelope to the connected app."""
        self._outbox.put(envelope)

    def ack_for(self, envelope_id: str, timeout: float = 10) -> dict[str, Any]:
        """The app's acknowledgement of one envelope, waiting for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ack in list(self.acks):
                if ack.get("envelope_id") == envelope_id:
                    return ack
            time.sleep(0.02)
        raise AssertionError(f"no ack for envelope {envelope_id}; acks: {self.acks}")

    def stop(self) -> None:
        """Close the server and its connections."""
        self._server.shutdown()

    def _session(self, connection: ServerConnection) -> None:
        connection.send(json.dumps({"type": "hello", "num_connections": 1}))
        try:
            while True:
                with suppress(queue.Empty):
                    connection.send(json.dumps(self._outbox.get_nowait()))
                try:
                    message = connection.recv(timeout=0.05)
                except TimeoutError:
                    continue
                self.acks.append(json.loads(message))
        except ConnectionClosed:
            return


def _in_range(messages: list[dict[str, Any]], args: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages between ``oldest`` and ``latest``, the ends only when ``inclusive``."""
    inclusive = str(args.get("inclusive", "")).lower() in ("1", "true")
    oldest = Decimal(str(args.get("oldest") or "0"))
    latest = Decimal(str(args["latest"])) if args.get("latest") else None

    def within(ts: Decimal) -> bool:
        after = ts >= oldest if inclusive else ts > oldest
        before = latest is None or (ts <= latest if inclusive else ts < latest)
        return after and before

    return [m for m in messages if within(Decimal(m["ts"]))]


def _parse_body(raw: bytes, content_type: str) -> dict[str, Any]:
    if not raw:
        return {}
    if content_type.startswith("application/json"):
        data = json.loads(raw)
        return data if isinstance(data, dict) else {"body": data}
    parsed: dict[str, Any] = dict(parse_qsl(raw.decode("utf-8")))
    for key in ("blocks", "attachments"):
        if isinstance(parsed.get(key), str):
            parsed[key] = json.loads(parsed[key])
    return parsed


@contextmanager
def running_fake_slack() -> Iterator[FakeSlack]:
    """A started fake, stopped afterwards."""
    fake = FakeSlack()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
