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
from conftest import ROOT

SPECS = ROOT / "specs"


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
async def test_a_syntax_error_arrives_at_its_token(client, tmp_path):
    uri = _open(client, tmp_path / "syntax.dl", "model m {\n    input 64\n    dense = 3\n}\ndata digits\n")
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    (d,) = client.diagnostics[uri]
    assert d.severity == t.DiagnosticSeverity.Error and d.message.startswith("unexpected '='")
    assert (d.range.start.line, d.range.start.character) == (2, 10)


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
    first_conv = next(k for k, r in enumerate(rows) if r.strip().startswith("conv 16 kernel=3 pad=same batchnorm relu"))
    assert labels[first_conv].strip() == "→ 16x8x8 · 176 params"
    block_conv = next(k for k, r in enumerate(rows) if r.strip().startswith("conv c kernel=3 stride=stride"))
    assert labels[block_conv].strip() == ("→ 16x8x8 · 2,336 params | 32x4x4 · 4,672 params | "
                                          "32x4x4 · 9,280 params")  # each use of the block, once
    import dlc
    from dlc.compiler.ops.base import fmt_shape
    from dlc.compiler.summary import to_json
    table = to_json(dlc.compile(path.read_text()))["layers"]  # dlc check --json's rows
    assert len(table) == 20
    for row in table:  # every row of dlc check's table, block uses and groups too, is in its line's hint
        shown = fmt_shape(tuple(row["output"])) + (f" · {row['params']:,} params" if row["params"] else "")
        assert shown in labels[row["line"] - 1].strip()[2:].split(" | "), row
    use = next(k for k, r in enumerate(rows) if r.strip().startswith("basic 32 stride=2"))
    assert labels[use].strip() == "→ 32x4x4 · 14,528 params"  # what leaves the block, all it holds


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


def _apply(text: str, edits) -> str:
    rows = text.split("\n")
    offsets = [0]
    for r in rows:
        offsets.append(offsets[-1] + len(r) + 1)
    for e in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        a = offsets[e.range.start.line] + e.range.start.character
        b = offsets[e.range.end.line] + e.range.end.character
        text = text[:a] + e.new_text + text[b:]
    return text


@pytest.mark.asyncio
async def test_a_shape_error_inside_a_block_carries_the_use_as_related_information(client):
    path = SPECS / "bad" / "residual_shape.dl"
    uri = _open(client, path, path.read_text())
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    (d,) = client.diagnostics[uri]
    assert d.message.startswith("the residual body changes the shape from 8x8x8 to 16x4x4")
    assert (d.range.start.line, d.range.start.character) == (5, 4)
    (note,) = d.related_information
    assert note.message == "in block 'down', used here"
    assert (note.location.uri, note.location.range.start.line, note.location.range.start.character) == (uri, 13, 4)


@pytest.mark.asyncio
async def test_a_did_you_mean_quick_fix_applied_clears_the_error(client, tmp_path):
    text = "model m {\n    input 64\n    dense 32 rleu\n    dense 10 softmax\n}\ndata digits\n"
    uri = _open(client, tmp_path / "q.dl", text)
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    actions = await client.text_document_code_action_async(t.CodeActionParams(
        text_document=t.TextDocumentIdentifier(uri=uri), range=t.Range(start=t.Position(2, 0), end=t.Position(2, 0)),
        context=t.CodeActionContext(diagnostics=client.diagnostics[uri])))
    action = actions[0]  # the closest word first, preferred; the others follow
    assert action.title == "replace 'rleu' with 'relu'" and action.kind == t.CodeActionKind.QuickFix
    assert action.is_preferred and not any(a.is_preferred for a in actions[1:])
    fixed = _apply(text, action.edit.changes[uri])
    assert fixed.splitlines()[2] == "    dense 32 relu"
    client.text_document_did_change(t.DidChangeTextDocumentParams(
        text_document=t.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=[t.TextDocumentContentChangeWholeDocument(text=fixed)]))
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    assert not client.diagnostics[uri]


@pytest.mark.asyncio
async def test_a_lint_fix_is_offered_for_the_warning(client, tmp_path):
    text = "model m {\n    input 64\n    dense 32 relu init=zeros\n    dense 10 softmax\n}\ndata digits\n"
    uri = _open(client, tmp_path / "l.dl", text)
    await client.wait_for_notification(t.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    assert [d.code for d in client.diagnostics[uri]] == ["DL102"]
    (action,) = await client.text_document_code_action_async(t.CodeActionParams(
        text_document=t.TextDocumentIdentifier(uri=uri), range=t.Range(start=t.Position(2, 5), end=t.Position(2, 5)),
        context=t.CodeActionContext(diagnostics=client.diagnostics[uri])))
    assert _apply(text, action.edit.changes[uri]).splitlines()[2] == "    dense 32 relu"


@pytest.mark.asyncio
async def test_formatting_every_spec_is_idempotent(client):
    specs = [p for p in sorted(SPECS.rglob("*.dl")) if p.name not in ("syntax_error.dl", "unclosed_block.dl")]
    assert len(specs) > 40
    options = t.FormattingOptions(tab_size=4, insert_spaces=True)
    for path in specs:
        text = path.read_text()
        uri = _open(client, path, text)
        edits = await client.text_document_formatting_async(t.DocumentFormattingParams(
            text_document=t.TextDocumentIdentifier(uri=uri), options=options))
        once = _apply(text, edits or [])
        client.text_document_did_change(t.DidChangeTextDocumentParams(
            text_document=t.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[t.TextDocumentContentChangeWholeDocument(text=once)]))
        again = await client.text_document_formatting_async(t.DocumentFormattingParams(
            text_document=t.TextDocumentIdentifier(uri=uri), options=options))
        assert not again, path.name
        client.text_document_did_close(t.DidCloseTextDocumentParams(text_document=t.TextDocumentIdentifier(uri=uri)))


@pytest.mark.asyncio
async def test_the_outline_holds_the_model_blocks_groups_and_statements(client):
    path = SPECS / "resnet_digits.dl"
    uri = _open(client, path, path.read_text())
    found = await client.text_document_document_symbol_async(t.DocumentSymbolParams(
        text_document=t.TextDocumentIdentifier(uri=uri)))
    assert [s.name for s in found] == ["basic", "resnet_digits", "data", "loss", "optimizer", "regularize",
                                       "schedule", "train"]
    basic, model = found[0], found[1]
    assert [c.name for c in basic.children] == ["residual shortcut"]
    assert (basic.range.start.line, basic.range.end.line) == (5, 10)
    assert [c.name for c in model.children] == ["repeat 2"]


@pytest.mark.asyncio
@pytest.mark.parametrize("line, expected, absent", [
    ("    ", {"dense", "conv", "basic", "residual"}, {"relu="}),  # a statement's start: layers, blocks
    ("    conv 16 ", {"kernel=", "stride=", "relu", "batchnorm", "init=", "frozen"}, {"adam"}),  # after a layer
    ("    basic ", {"c=", "stride=", "shortcut="}, {"kernel="}),  # a block's parameters
    ("    } ", {"relu", "batchnorm", "dropout=", "frozen"}, {"kernel="}),  # after a group's '}'
    ("    repeat 2 { conv 8 ", {"kernel=", "relu"}, set()),  # inside a one-line repeat
    ("    input 12x29 ", {"variable", "tokens", "dropout="}, {"kernel="}),  # an input line: series, texts
])
async def test_completion_by_context(client, tmp_path, line, expected, absent):
    text = ("block basic(c, stride=1, shortcut=identity) {\n    residual shortcut {\n        conv c kernel=3\n"
            "    } relu\n}\nmodel m {\n    input 1x8x8\n" + line + "\n}\ndata digits\n")
    uri = _open(client, tmp_path / "c.dl", text)
    items = await client.text_document_completion_async(t.CompletionParams(
        text_document=t.TextDocumentIdentifier(uri=uri), position=t.Position(7, len(line))))
    labels = {i.label for i in items.items}
    assert expected <= labels and not (absent & labels)


@pytest.mark.asyncio
async def test_completion_after_data_names_the_bundled_sets(client, tmp_path):
    uri = _open(client, tmp_path / "d.dl", "model m {\n    input 64\n    dense 10 softmax\n}\ndata \n")
    items = await client.text_document_completion_async(t.CompletionParams(
        text_document=t.TextDocumentIdentifier(uri=uri), position=t.Position(4, 5)))
    assert {"digits", "iris", "spiral", "moons"} <= {i.label for i in items.items}


def test_hover_on_variable_explains_series_of_different_lengths():
    from dlc.editor import hover
    assert hover("variable").startswith("**variable** (input): `input CxL variable` takes series of 1 to L steps")


def test_hover_on_tokens_and_the_text_ops():
    from dlc.editor import hover
    assert hover("tokens").startswith("**tokens** (input): `input L tokens` takes texts as token ids")
    for op in ("embedding", "position", "attention"):
        assert hover(op).startswith(f"**{op}**"), op
