"""`dlc lsp`'s transport: JSON-RPC frames over stdio, read and answered as the LSP specification says,
in place of pygls's reading loop (which left a client unanswered or the server deaf in these cases):

- a frame whose body is not JSON gets a ParseError (-32700, id null); a header block without a valid
  Content-Length is skipped up to the next frame; a Content-Length longer than its body (the next frame
  starts inside it) is cut at that frame;
- a request whose params are not the method's gets InvalidParams (-32602) with its id;
- a request before `initialize` gets ServerNotInitialized (-32002); a second `initialize` and any request
  after `shutdown` get InvalidRequest (-32600); notifications then are dropped, except `exit`;
- the process's exit code is 0 after `shutdown` then `exit`, 1 for `exit` without `shutdown` or when
  the client closes the stream first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re

FRAME = re.compile(rb"Content-Length:[ \t]*(\d+)[ \t]*\r\n(?:[A-Za-z][A-Za-z0-9-]*:[^\r\n]*\r\n)*\r\n", re.IGNORECASE)
MAX_BUFFER = 256 << 20  # bytes held while waiting for a frame's end

PARSE_ERROR, INVALID_REQUEST, INVALID_PARAMS, INTERNAL_ERROR, NOT_INITIALIZED = -32700, -32600, -32602, -32603, -32002

log = logging.getLogger(__name__)


class Frames:
    """Bodies out of a byte stream: feed() bytes, then next() gives a body or None until more arrive."""

    def __init__(self):
        self.buffer = b""
        self.skipped = 0  # bytes that were no frame

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def next(self) -> bytes | None:
        m = FRAME.search(self.buffer)
        if m is None:
            keep = self.buffer[-64:]  # (a header may be arriving in pieces)
            self.skipped += len(self.buffer) - len(keep)
            self.buffer = keep
            return None
        self.skipped += m.start()
        start, length = m.end(), int(m.group(1))
        body = self.buffer[start:start + length]
        following = FRAME.search(self.buffer, start, start + length + 64)
        if following is not None and following.start() < start + length:
            body = self.buffer[start:following.start()]  # the next frame starts inside this one: it was shorter
            self.buffer = self.buffer[following.start():]
            return body
        if len(body) < length:
            if len(self.buffer) > MAX_BUFFER:  # a length no client sends: drop the frame
                self.skipped += len(self.buffer)
                self.buffer = b""
            return None
        self.buffer = self.buffer[start + length:]
        return body


def _error(code: int, message: str, msg_id=None) -> dict:
    return {"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}}


async def serve(ls, stdin, stdout) -> int:
    """Answer the client on stdin/stdout until `exit` or the end of the stream. -> the exit code."""
    from pygls.exceptions import JsonRpcInvalidParams
    from pygls.io_ import StdoutWriter
    protocol = ls.protocol
    writer = StdoutWriter(stdout)
    protocol.set_writer(writer)
    loop = asyncio.get_running_loop()
    frames = Frames()
    state = {"initialized": False}

    def send(obj: dict) -> None:
        data = json.dumps(obj).encode()
        writer.write(b"Content-Length: %d\r\n\r\n" % len(data) + data)
        stdout.flush()

    def handle(body: bytes) -> None:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            send(_error(PARSE_ERROR, f"the message is not JSON: {e}"))
            return
        if not isinstance(data, dict) or not isinstance(data.get("method", ""), str):
            send(_error(INVALID_REQUEST, "a message is a JSON object with a method", None))
            return
        method, request = data.get("method"), "id" in data and "method" in data
        msg_id = data.get("id")
        if request:
            refusal = (
                (INVALID_REQUEST, "initialize was already received") if method == "initialize" and state["initialized"]
                else (INVALID_REQUEST, "the server is shut down: only exit is accepted") if protocol._shutdown
                else (NOT_INITIALIZED, "the server is not initialized") if not state["initialized"]
                and method != "initialize" else None)
            if refusal is not None:
                send(_error(*refusal, msg_id))
                return
        elif method and protocol._shutdown and method != "exit":
            return
        try:
            message = protocol.structure_message(data)
        except JsonRpcInvalidParams:
            if request:
                send(_error(INVALID_PARAMS, f"invalid params for {method}", msg_id))
            return
        except Exception as e:  # (pygls wraps what it cannot read as an internal error)
            if request:
                send(_error(INTERNAL_ERROR, f"cannot read the message: {e}", msg_id))
            return
        if method == "initialize":
            state["initialized"] = True
        protocol.handle_message(message)

    try:
        while True:
            body = frames.next()
            if body is None:
                data = await loop.run_in_executor(None, stdin.read1, 65536)
                if not data:
                    return 0 if protocol._shutdown else 1
                frames.feed(data)
                continue
            if frames.skipped:
                log.warning("skipped %d bytes that were no frame", frames.skipped)
                if frames.skipped > 2:  # (more than a stray line end)
                    send(_error(PARSE_ERROR, f"{frames.skipped} bytes without a valid Content-Length header "
                                             "were skipped"))
                frames.skipped = 0
            handle(body)
    except SystemExit as e:  # pygls's exit handler: 0 after shutdown, else 1
        return e.code if isinstance(e.code, int) else 1
    except BrokenPipeError:
        return 0 if protocol._shutdown else 1
