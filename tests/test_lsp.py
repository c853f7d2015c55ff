"""dlc lsp, driven as an editor drives it (pytest-lsp starts `python -m dlc lsp` and speaks LSP over
stdio): diagnostics at the compiler's spans, shapes as inlay hints, hover and completion."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("pygls")
pytest_lsp = pytest.importorskip("pytest_lsp")
from lsprotocol import types as t  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient  # noqa: E402

SPECS = Path(__file__).resolve().parent.parent / "specs"


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "dlc", "lsp"]))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(t.InitializeParams(capabilities=t.ClientCapabilities(),
                                                           root_uri=SPECS.as_uri()))
    yield
    await lsp_client.shutdown_session()


def _open(client, path: Path, text: str) -> str:
    uri = path.as_uri()
    client.text_document_did_open(t.DidOpenTextDocumentParams(
        text_document=t.TextDocumentItem(uri=uri, language_id="dl", version=1, text=text)))
    return uri


@pytest.mark.asyncio
async def test_errors_arrive_where_dlc_check_puts_them(client, tmp_path):
    uri = _open(client, tmp_path / "bad.dl", "model m {\n    input 64\n    dense 10 rleu\n}\ndata digits\n")
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    d = next(d for d in client.diagnostics[uri] if "rleu" in d.message)  # (and the follow-on: no layers)
    assert d.message.startswith("unknown activation 'rleu'") and "did you mean 'relu'" in d.message
    assert (d.range.start.line, d.range.start.character, d.range.end.character) == (2, 13, 17)
    assert d.severity == t.DiagnosticSeverity.Error


@pytest.mark.asyncio
async def test_a_change_is_checked_again(client, tmp_path):
    path = tmp_path / "s.dl"
    uri = _open(client, path, "model m {\n    input 64\n    dense 10 rleu\n}\ndata digits\n")
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    client.text_document_did_change(t.DidChangeTextDocumentParams(
        text_document=t.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=[t.TextDocumentContentChangeWholeDocument(
            text="model m {\n    input 64\n    dense 10 relu init=zeros\n    dense 10 softmax\n}\ndata digits\n")]))
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    assert [(d.code, d.severity) for d in client.diagnostics[uri]] == [("DL102", t.DiagnosticSeverity.Warning)]


@pytest.mark.asyncio
async def test_each_line_shows_its_shape_and_parameters(client):
    path = SPECS / "resnet_digits.dl"
    uri = _open(client, path, path.read_text())
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    hints = await client.text_document_inlay_hint_async(t.InlayHintParams(
        text_document=t.TextDocumentIdentifier(uri=uri),
        range=t.Range(start=t.Position(0, 0), end=t.Position(40, 0))))
    labels = {h.position.line: h.label for h in hints}
    rows = path.read_text().splitlines()
    first_conv = next(k for k, r in enumerate(rows) if r.strip().startswith("conv 16 kernel=3 pad=same relu batchnorm"))
    assert labels[first_conv].strip() == "→ 16x8x8 · 176 params"
    block_conv = next(k for k, r in enumerate(rows) if r.strip().startswith("conv c kernel=3 stride=stride"))
    assert labels[block_conv].strip() == ("→ 16x8x8 · 2,336 params | 32x4x4 · 4,672 params | "
                                          "32x4x4 · 9,280 params")  # each use of the block, once


@pytest.mark.asyncio
async def test_hover_and_completion_read_the_registries(client, tmp_path):
    text = "model m {\n    input 64\n    dense 10 softmax\n}\noptimizer \n"
    uri = _open(client, tmp_path / "h.dl", text)
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    hover = await client.text_document_hover_async(t.HoverParams(
        text_document=t.TextDocumentIdentifier(uri=uri), position=t.Position(2, 6)))
    assert hover.contents.value.startswith("**dense** (layer): fully connected")
    assert "`units` (int, required" in hover.contents.value
    items = await client.text_document_completion_async(t.CompletionParams(
        text_document=t.TextDocumentIdentifier(uri=uri), position=t.Position(4, 10)))
    assert [i.label for i in items.items] == ["adagrad", "adam", "adamw", "genetic", "rmsprop", "sgd"]


@pytest.mark.asyncio
async def test_a_block_s_definition_and_uses_are_found(client):
    path = SPECS / "resnet_digits.dl"
    uri = _open(client, path, path.read_text())
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    rows = path.read_text().splitlines()
    use = next(k for k, r in enumerate(rows) if r.strip().startswith("basic 32 stride=2"))
    column = rows[use].index("basic")
    found = await client.text_document_definition_async(t.DefinitionParams(
        text_document=t.TextDocumentIdentifier(uri=uri), position=t.Position(use, column + 2)))
    define = next(k for k, r in enumerate(rows) if r.startswith("block basic"))
    assert (found.range.start.line, found.range.start.character) == (define, 6)
    refs = await client.text_document_references_async(t.ReferenceParams(
        text_document=t.TextDocumentIdentifier(uri=uri), position=t.Position(define, 7),
        context=t.ReferenceContext(include_declaration=False)))
    uses = [k for k, r in enumerate(rows) if r.strip().startswith(("basic ", "repeat 2 { basic"))]
    assert len(uses) == 3  # basic 32 stride=2, basic 32, and the one inside repeat 2 { ... }
    assert sorted(r.range.start.line for r in refs) == uses
