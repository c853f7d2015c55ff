"""dlc lsp against the LSP specification (issue 31: 14-17): positions in the negotiated encoding (UTF-16,
UTF-8, UTF-32) with emoji and CJK before what is reported and edited; inlay hints of the version asked
for, and a refresh when a check lands; checks off the loop (a hover is answered while a long spec is
checked); closing clears diagnostics; protocol errors answered as the specification says; exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("pygls")
pytest_lsp = pytest.importorskip("pytest_lsp")
from lsprotocol import types as t  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient  # noqa: E402

from dlc.lsp import from_client_units, to_client_units  # noqa: E402
from conftest import ROOT

SERVER = [sys.executable, "-m", "dlc", "lsp"]
LINE = '    dense 10 nme="数据😀" rleu'  # the error ('rleu') after two CJK characters and an emoji
TEXT = f"model m {{\n    input 64\n{LINE}\n}}\ndata digits\n"
CODECS = {"utf-8": "utf-8", "utf-16": "utf-16-le", "utf-32": "utf-32-le"}
WIDTH = {"utf-8": 1, "utf-16": 2, "utf-32": 4}


def _units(text: str, encoding: str) -> int:
    return len(text.encode(CODECS[encoding], "surrogatepass")) // WIDTH[encoding]


def _column(line: str, units: int, encoding: str) -> str:
    """The text before `units` of the encoding, decoded by Python's own codecs (an independent oracle)."""
    return line.encode(CODECS[encoding])[:units * WIDTH[encoding]].decode(CODECS[encoding])


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32"])
def test_columns_convert_both_ways_like_python_s_codecs(encoding):
    lines = [LINE, "a😀b数c", ""]
    for line_no, line in enumerate(lines):
        for column in range(len(line) + 1):
            units = to_client_units(lines, line_no, column, encoding)
            assert units == _units(line[:column], encoding)
            assert from_client_units(lines, line_no, units, encoding) == column
    inside = to_client_units(lines, 1, 1, encoding) + 1  # a unit inside the emoji (utf-8, utf-16)
    assert from_client_units(lines, 1, inside, encoding) == (2 if encoding == "utf-32" else 1)


def _session(encoding: str, refresh: bool = False):
    async def start(lsp_client: LanguageClient):
        caps = t.ClientCapabilities(
            general=t.GeneralClientCapabilities(position_encodings=[encoding]),
            workspace=t.WorkspaceClientCapabilities(inlay_hint=t.InlayHintWorkspaceClientCapabilities(
                refresh_support=refresh)))
        result = await lsp_client.initialize_session(t.InitializeParams(capabilities=caps))
        return result
    return start


def _open(client, path: Path, text: str) -> str:
    uri = path.as_uri()
    client.text_document_did_open(t.DidOpenTextDocumentParams(
        text_document=t.TextDocumentItem(uri=uri, language_id="dl", version=1, text=text)))
    return uri


def _apply(text: str, edits, encoding: str) -> str:
    rows = text.split("\n")
    for e in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        assert e.range.start.line == e.range.end.line
        row = rows[e.range.start.line]
        a = len(_column(row, e.range.start.character, encoding))
        b = len(_column(row, e.range.end.character, encoding))
        rows[e.range.start.line] = row[:a] + e.new_text + row[b:]
    return "\n".join(rows)


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER), params=["utf-8", "utf-16", "utf-32"])
async def encoded(lsp_client: LanguageClient, request):
    result = await _session(request.param)(lsp_client)
    assert result.capabilities.position_encoding == request.param
    lsp_client.negotiated = request.param
    yield
    await lsp_client.shutdown_session()


@pytest.mark.asyncio
async def test_positions_and_quick_fixes_use_the_negotiated_encoding(encoded, tmp_path):
    lsp_client, encoding = encoded, encoded.negotiated
    uri = _open(lsp_client, tmp_path / "u.dl", TEXT)
    await lsp_client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    d = next(d for d in lsp_client.diagnostics[uri] if "rleu" in d.message)
    assert _column(LINE, d.range.start.character, encoding).endswith('" ')
    assert LINE[len(_column(LINE, d.range.start.character, encoding)):][:4] == "rleu"
    assert _column(LINE, d.range.end.character, encoding).endswith("rleu")
    actions = await lsp_client.text_document_code_action_async(t.CodeActionParams(
        text_document=t.TextDocumentIdentifier(uri=uri), range=d.range, context=t.CodeActionContext(diagnostics=[d])))
    fix = next(a for a in actions if a.is_preferred)
    fixed = _apply(TEXT, fix.edit.changes[uri], encoding)
    assert fixed == TEXT.replace("rleu", "relu")  # the buffer intact: no character cut in half
    hover = await lsp_client.text_document_hover_async(t.HoverParams(
        text_document=t.TextDocumentIdentifier(uri=uri),
        position=t.Position(2, _units(LINE[:LINE.index("rleu") - 2], encoding))))  # on the emoji's string
    assert hover is None or "dense" not in hover.contents.value


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def refreshing(lsp_client: LanguageClient):
    refreshes = []

    @lsp_client.feature(t.WORKSPACE_INLAY_HINT_REFRESH)
    def on_refresh(params):
        refreshes.append(time.perf_counter())
        return None
    await _session("utf-16", refresh=True)(lsp_client)
    lsp_client.refreshes = refreshes
    yield
    await lsp_client.shutdown_session()


def _hints_params(uri):
    return t.InlayHintParams(text_document=t.TextDocumentIdentifier(uri=uri),
                             range=t.Range(start=t.Position(0, 0), end=t.Position(10, 0)))


@pytest.mark.asyncio
async def test_inlay_hints_are_of_the_version_asked_for_and_refreshed(refreshing, tmp_path):
    lsp_client = refreshing
    text = "model m {\n    input 64\n    dense 10 relu\n    dense 10 softmax\n}\ndata digits\n"
    uri = _open(lsp_client, tmp_path / "h.dl", text)
    await lsp_client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    hints = await lsp_client.text_document_inlay_hint_async(_hints_params(uri))
    assert {h.position.line: h.label.strip() for h in hints}[2] == "→ 10 · 650 params"
    lsp_client.text_document_did_change(t.DidChangeTextDocumentParams(
        text_document=t.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=[t.TextDocumentContentChangeWholeDocument(text=text.replace("dense 10 relu", "dense 20 relu"))]))
    hints = await lsp_client.text_document_inlay_hint_async(_hints_params(uri))  # asked at once, in the debounce
    assert {h.position.line: h.label.strip() for h in hints}[2] == "→ 20 · 1,300 params"
    for _ in range(50):
        if len(lsp_client.refreshes) >= 2:
            break
        await asyncio.sleep(0.1)
    assert len(lsp_client.refreshes) >= 2  # one per check that landed


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def plain(lsp_client: LanguageClient):
    await _session("utf-16")(lsp_client)
    yield
    await lsp_client.shutdown_session()


@pytest.mark.asyncio
async def test_a_hover_is_answered_while_a_long_spec_is_checked(plain, tmp_path):
    lsp_client = plain
    sys.path.insert(0, str(ROOT / "bench"))
    from gen_large_spec import large_spec
    text = large_spec(20_000)
    uri = _open(lsp_client, tmp_path / "big.dl", text)
    await asyncio.sleep(0.3)  # the check is under way
    rows = text.split("\n")
    line = next(k for k, r in enumerate(rows) if r.strip().startswith("dense"))
    hover = await lsp_client.text_document_hover_async(t.HoverParams(
        text_document=t.TextDocumentIdentifier(uri=uri), position=t.Position(line, rows[line].index("dense") + 1)))
    answered = time.perf_counter()
    assert uri not in lsp_client.diagnostics  # the hover came first: the check was still running
    await lsp_client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    assert time.perf_counter() > answered and hover is not None


@pytest.mark.asyncio
async def test_a_file_never_opened_gets_its_hints_from_the_disk(plain, tmp_path):
    """A request about a file the client did not open was a check scheduled, dropped and scheduled again,
    for ever: it is answered from the file as it is on disk."""
    path = tmp_path / "closed.dl"
    path.write_text("model m {\n    input 64\n    dense 10 softmax\n}\ndata digits\n")
    hints = await asyncio.wait_for(plain.text_document_inlay_hint_async(_hints_params(path.as_uri())), 30)
    assert {h.position.line: h.label.strip() for h in hints}[2] == "→ 10 · 650 params"
    assert path.as_uri() not in plain.diagnostics


@pytest.mark.asyncio
async def test_closing_a_file_clears_its_diagnostics(plain, tmp_path):
    lsp_client = plain
    uri = _open(lsp_client, tmp_path / "c.dl", TEXT)
    await lsp_client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    assert lsp_client.diagnostics[uri]
    lsp_client.text_document_did_close(t.DidCloseTextDocumentParams(text_document=t.TextDocumentIdentifier(uri=uri)))
    await lsp_client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    assert list(lsp_client.diagnostics[uri]) == []


# ---- the transport, spoken raw ------------------------------------------------------------------------
class Raw:
    def __init__(self):
        self.p = subprocess.Popen(SERVER, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.buffer = b""

    def send(self, obj=None, raw: bytes | None = None, length: bytes | None = None):
        body = raw if raw is not None else json.dumps(obj).encode()
        self.p.stdin.write(b"Content-Length: " + (length or str(len(body)).encode()) + b"\r\n\r\n" + body)
        self.p.stdin.flush()

    def receive(self, want: int = 1, timeout: float = 10) -> list[dict]:
        out, end = [], time.time() + timeout
        while len(out) < want and time.time() < end:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if sep:
                n = int(head.split(b"\r\n")[0].split(b":")[1])
                if len(rest) >= n:
                    out.append(json.loads(rest[:n]))
                    self.buffer = rest[n:]
                    continue
            if select.select([self.p.stdout], [], [], 0.1)[0]:
                self.buffer += os.read(self.p.stdout.fileno(), 65536)
        return out

    def initialize(self):
        self.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}})
        assert self.receive()[0]["id"] == 1
        self.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})


HOVER = {"textDocument": {"uri": "file:///x.dl"}, "position": {"line": 0, "character": 0}}


@pytest.fixture
def raw():
    r = Raw()
    yield r
    if r.p.poll() is None:
        r.p.kill()
    r.p.wait()


def test_protocol_errors_are_answered_and_the_server_keeps_listening(raw):
    raw.send({"jsonrpc": "2.0", "id": 9, "method": "textDocument/hover", "params": HOVER})
    assert raw.receive()[0]["error"]["code"] == -32002  # before initialize: not initialized
    raw.initialize()
    raw.send({"jsonrpc": "2.0", "id": 2, "method": "initialize", "params": {"capabilities": {}}})
    assert raw.receive()[0] == {"jsonrpc": "2.0", "id": 2, "error": {
        "code": -32600, "message": "initialize was already received"}}
    raw.send({"jsonrpc": "2.0", "id": 3, "method": "textDocument/hover", "params": {"bogus": 1}})
    assert raw.receive()[0]["error"]["code"] == -32602
    raw.send(raw=b'{"jsonrpc": "2.0", "id": 4, "method"')
    (parse,) = raw.receive()
    assert parse["id"] is None and parse["error"]["code"] == -32700
    raw.send(raw=json.dumps({"jsonrpc": "2.0", "id": 5, "method": "shutdown"}).encode(), length=b"abc")
    raw.send({"jsonrpc": "2.0", "id": 6, "method": "shutdown"})  # a bad Content-Length does not deafen it
    answers = raw.receive(2)
    assert answers[0]["error"]["code"] == -32700 and answers[-1] == {"jsonrpc": "2.0", "id": 6, "result": None}
    raw.send({"jsonrpc": "2.0", "id": 7, "method": "textDocument/hover", "params": HOVER})
    assert raw.receive()[0]["error"] == {"code": -32600, "message": "the server is shut down: only exit is accepted"}
    raw.send({"jsonrpc": "2.0", "method": "exit"})
    assert raw.p.wait(10) == 0


def test_invalid_params_get_an_error_with_their_id(raw):
    raw.initialize()
    raw.send({"jsonrpc": "2.0", "id": 3, "method": "textDocument/hover", "params": {"bogus": 1}})
    assert raw.receive()[0] == {"jsonrpc": "2.0", "id": 3, "error": {
        "code": -32602, "message": "invalid params for textDocument/hover"}}


def test_a_content_length_longer_than_its_body_is_cut_at_the_next_frame(raw):
    raw.initialize()
    body = json.dumps({"jsonrpc": "2.0", "id": 5, "method": "textDocument/hover", "params": HOVER}).encode()
    raw.send(raw=body, length=str(len(body) + 500).encode())
    raw.send({"jsonrpc": "2.0", "id": 6, "method": "shutdown"})
    ids = sorted(m.get("id") for m in raw.receive(2))
    assert ids == [5, 6]


@pytest.mark.parametrize("shutdown, code", [(True, 0), (False, 1)])
def test_exit_code_says_whether_shutdown_came_first(raw, shutdown, code):
    raw.initialize()
    if shutdown:
        raw.send({"jsonrpc": "2.0", "id": 2, "method": "shutdown"})
        raw.receive()
    raw.send({"jsonrpc": "2.0", "method": "exit"})
    assert raw.p.wait(10) == code
