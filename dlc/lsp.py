"""`dlc lsp`: a Language Server Protocol server over stdio (pygls >= 2; pip install "dlc[lsp]").

Diagnostics on open and on every change (debounced; a block-use note as related information), the
shape and parameters after each model line (inlay hints), hover on a layer / activation / init /
optimizer / loss / schedule name, completion by context, go to a block's definition and find its uses,
the outline (document symbols), quick fixes (dlc/quick_fixes.py) and formatting (dlc/formatting.py).
What it says comes from dlc/editor.py, which asks the compiler; docs/editors.md sets it up in VS Code,
Neovim, Helix, Emacs.

- Positions: the compiler counts columns in characters (code points); the client in the encoding it
  negotiated (UTF-16 by default, UTF-8 for Neovim, UTF-32): every position sent or received is converted
  against the text it belongs to (the checked text for diagnostics and hints, the current one otherwise).
- Checks run off the server's loop, on one worker thread: a hover or completion is answered while a long
  spec is checked; the newest version wins (a check of an older one is dropped, never published), and
  inlay hints wait for the check of the version they are asked for; a client that can refresh them is told
  when a check lands.
- The transport (framing, errors, exit codes) is dlc/lsp_io.py.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dlc import editor

DEBOUNCE = 0.15  # seconds of quiet typing before a spec is checked again


def server():
    try:
        from lsprotocol import types as t
        from pygls.lsp.server import LanguageServer
    except ImportError:
        from dlc.compiler.diagnostics import Diagnostic, DLError
        raise DLError(Diagnostic("error", "dlc lsp needs pygls 2, which is not installed",
                                 hint='pip install "dlc[lsp]"')) from None
    from dlc import __version__, editor

    ls = LanguageServer("dlc", __version__)
    checked: dict[str, Checked] = {}  # uri -> the newest check published
    pending: dict[str, asyncio.Task] = {}  # uri -> the check scheduled or running
    worker = ThreadPoolExecutor(1, thread_name_prefix="dlc-check")
    severity = {"error": t.DiagnosticSeverity.Error, "warning": t.DiagnosticSeverity.Warning,
                "note": t.DiagnosticSeverity.Information}

    def encoding() -> str:
        return str(getattr(ls.workspace.position_encoding, "value", ls.workspace.position_encoding) or "utf-16")

    def position(lines, at) -> t.Position:
        """A (line, character) in code points of `lines` as the client counts it."""
        return t.Position(at[0], to_client_units(lines, at[0], at[1], encoding()))

    def rng(lines, start, end) -> t.Range:
        return t.Range(start=position(lines, start), end=position(lines, end))

    def received(doc, at: t.Position) -> tuple[int, int]:
        """A client's position in the current text, in code points."""
        return at.line, from_client_units(text_lines(doc.source), at.line, at.character, encoding())

    def lsp_diagnostic(uri: str, d: editor.Found, lines) -> t.Diagnostic:
        return t.Diagnostic(range=rng(lines, d.start, d.end), message=d.message,
                            severity=severity.get(d.severity, t.DiagnosticSeverity.Error), code=d.code, source="dlc",
                            related_information=[t.DiagnosticRelatedInformation(
                                location=t.Location(uri=uri, range=rng(lines, n.start, n.end)), message=n.message)
                                for n in d.related] or None)

    def can_refresh_hints() -> bool:
        caps = getattr(ls, "client_capabilities", None)
        hints = getattr(getattr(caps, "workspace", None), "inlay_hint", None)
        return bool(getattr(hints, "refresh_support", False))

    async def analysed(uri: str) -> Checked:
        """The document's text as it is now, checked on the worker thread."""
        doc = ls.workspace.get_text_document(uri)
        text, version = doc.source, doc.version
        analysis = await asyncio.get_running_loop().run_in_executor(
            worker, editor.analyse, text, editor.document_path(uri))
        return Checked(analysis, text_lines(text), version)

    async def check(uri: str, delay: float) -> None:
        await asyncio.sleep(delay)
        found = await analysed(uri)
        analysis, lines, version = found.analysis, found.lines, found.version
        if uri not in open_docs or ls.workspace.get_text_document(uri).version != version:
            return  # closed, or edited since: the newer version's check follows
        checked[uri] = found
        ls.text_document_publish_diagnostics(t.PublishDiagnosticsParams(
            uri=uri, version=version, diagnostics=[lsp_diagnostic(uri, d, lines) for d in analysis.diagnostics]))
        if can_refresh_hints():
            ls.workspace_inlay_hint_refresh(None)

    def schedule(uri: str, delay: float) -> None:
        if uri in pending:
            pending.pop(uri).cancel()  # (a check already running finishes on the worker; its result is dropped)
        task = pending[uri] = asyncio.get_running_loop().create_task(check(uri, delay))
        task.add_done_callback(lambda done: pending.pop(uri, None) if pending.get(uri) is done else None)

    open_docs: set[str] = set()

    @ls.feature(t.TEXT_DOCUMENT_DID_OPEN)
    def did_open(params: t.DidOpenTextDocumentParams):
        open_docs.add(params.text_document.uri)
        schedule(params.text_document.uri, 0)

    @ls.feature(t.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(params: t.DidChangeTextDocumentParams):
        schedule(params.text_document.uri, DEBOUNCE)

    @ls.feature(t.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(params: t.DidCloseTextDocumentParams):
        uri = params.text_document.uri
        open_docs.discard(uri)
        if uri in pending:
            pending.pop(uri).cancel()
        checked.pop(uri, None)
        ls.text_document_publish_diagnostics(t.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    async def current(uri: str) -> Checked:
        """The check of the document's current version (waiting for it when one is under way); a file the
        client has not opened is checked as it is on disk (its checks are never published or kept)."""
        if uri not in open_docs:
            return await analysed(uri)
        version = ls.workspace.get_text_document(uri).version
        while uri not in checked or checked[uri].version != version:
            if uri not in pending:
                schedule(uri, 0)
            try:
                await asyncio.shield(pending[uri])
            except asyncio.CancelledError:  # (superseded by a newer edit: wait for that one)
                pass
            version = ls.workspace.get_text_document(uri).version
        return checked[uri]

    @ls.feature(t.TEXT_DOCUMENT_INLAY_HINT)
    async def inlay_hints(params: t.InlayHintParams):
        found = await current(params.text_document.uri)
        first, last = params.range.start.line, params.range.end.line
        return [t.InlayHint(position=position(found.lines, (h.line, h.character)), label=" " + h.text,
                            kind=t.InlayHintKind.Type, padding_left=True)
                for h in found.analysis.hints if first <= h.line <= last]

    @ls.feature(t.TEXT_DOCUMENT_HOVER)
    def hover(params: t.HoverParams):
        doc = ls.workspace.get_text_document(params.text_document.uri)
        word = editor.word_at(doc.source, *received(doc, params.position))
        text = editor.hover(word) if word else None
        if text is None:
            return None
        return t.Hover(contents=t.MarkupContent(kind=t.MarkupKind.Markdown, value=text))

    @ls.feature(t.TEXT_DOCUMENT_COMPLETION, t.CompletionOptions(trigger_characters=[" "]))
    def completion(params: t.CompletionParams):
        doc = ls.workspace.get_text_document(params.text_document.uri)
        words = editor.completions(doc.source, *received(doc, params.position), editor.block_params(doc.source))
        return t.CompletionList(is_incomplete=False, items=[t.CompletionItem(label=w) for w in words])

    def _places(params):
        doc = ls.workspace.get_text_document(params.text_document.uri)
        word = editor.word_at(doc.source, *received(doc, params.position))
        return (editor.block_places(doc.source, word) if word else (None, [])), doc

    def _location(doc, place):
        line, start, end = place
        return t.Location(uri=doc.uri, range=rng(text_lines(doc.source), (line, start), (line, end)))

    @ls.feature(t.TEXT_DOCUMENT_DEFINITION)
    def definition(params: t.DefinitionParams):
        (found, _), doc = _places(params)
        return _location(doc, found) if found else None

    @ls.feature(t.TEXT_DOCUMENT_REFERENCES)
    def references(params: t.ReferenceParams):
        (found, uses), doc = _places(params)
        if found is None:
            return []
        return ([_location(doc, found)] if params.context.include_declaration else []) + \
            [_location(doc, u) for u in uses]

    @ls.feature(t.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def symbols(params: t.DocumentSymbolParams):
        doc = ls.workspace.get_text_document(params.text_document.uri)
        rows = doc.source.splitlines()
        kinds = {"model": t.SymbolKind.Class, "block": t.SymbolKind.Function, "residual": t.SymbolKind.Namespace,
                 "parallel": t.SymbolKind.Namespace, "branch": t.SymbolKind.Namespace,
                 "repeat": t.SymbolKind.Namespace}

        def convert(s: editor.Symbol) -> t.DocumentSymbol:
            whole = rng(text_lines(doc.source), (s.line, 0), (s.last_line, len(rows[s.last_line]) if s.last_line < len(rows) else 0))
            return t.DocumentSymbol(name=s.name, detail=s.detail, kind=kinds.get(s.detail, t.SymbolKind.Property),
                                    range=whole, selection_range=rng(text_lines(doc.source), (s.line, s.start), (s.line, s.end)),
                                    children=[convert(c) for c in s.children] or None)
        return [convert(s) for s in editor.symbols(doc.source)]

    @ls.feature(t.TEXT_DOCUMENT_CODE_ACTION,
                t.CodeActionOptions(code_action_kinds=[t.CodeActionKind.QuickFix]))
    async def code_actions(params: t.CodeActionParams):
        from dlc.quick_fixes import fixes
        uri = params.text_document.uri
        found = await current(uri)
        doc = ls.workspace.get_text_document(uri)
        if doc.version != found.version:
            return []  # edited while it was checked: the client asks again
        first, last = params.range.start.line, params.range.end.line
        out = []
        for d in found.analysis.diagnostics:
            if d.diagnostic is None or not (first <= d.start[0] <= last or d.start[0] <= first <= d.end[0]):
                continue
            for fix in fixes(doc.source, d.diagnostic):
                out.append(t.CodeAction(
                    title=fix.title, kind=t.CodeActionKind.QuickFix, diagnostics=[lsp_diagnostic(uri, d, found.lines)],
                    is_preferred=fix.preferred, edit=t.WorkspaceEdit(changes={uri: [
                        t.TextEdit(range=rng(text_lines(doc.source), start, end), new_text=new) for start, end, new in fix.edits]})))
        return out

    @ls.feature(t.TEXT_DOCUMENT_FORMATTING)
    def formatting(params: t.DocumentFormattingParams):
        from dlc.compiler.diagnostics import DLError
        from dlc.formatting import format_spec
        doc = ls.workspace.get_text_document(params.text_document.uri)
        try:
            formatted = format_spec(doc.source)
        except DLError:
            return []  # syntax errors: nothing to format until they are fixed (they are diagnosed)
        if formatted == doc.source:
            return []
        rows = doc.source.split("\n")
        return [t.TextEdit(range=rng(text_lines(doc.source), (0, 0), (len(rows) - 1, len(rows[-1]))), new_text=formatted)]

    return ls


def text_lines(text: str) -> list[str]:
    return text.split("\n")


def _units(ch: str, encoding: str) -> int:
    """How many of the encoding's code units one character takes (LSP: utf-8, utf-16, utf-32)."""
    if encoding == "utf-8":
        return len(ch.encode("utf-8", "surrogatepass"))
    if encoding == "utf-32":
        return 1
    return 2 if ord(ch) > 0xFFFF else 1


def to_client_units(lines: list[str], line: int, column: int, encoding: str) -> int:
    """A column in code points -> the client's units on that line (past the text: as if ASCII)."""
    text = lines[line] if 0 <= line < len(lines) else ""
    return sum(_units(c, encoding) for c in text[:column]) + max(0, column - len(text))


def from_client_units(lines: list[str], line: int, units: int, encoding: str) -> int:
    """The client's units on a line -> a column in code points; inside a character: that character (the
    specification's rule for a position that splits one); past the line's end: its end."""
    text = lines[line] if 0 <= line < len(lines) else ""
    seen = 0
    for column, c in enumerate(text):
        if seen >= units:
            return column
        seen += _units(c, encoding)
        if seen > units:
            return column
    return len(text)


@dataclass
class Checked:
    """A check and the text it was made of (its lines, for positions in the client's units)."""

    analysis: editor.Analysis
    lines: list[str]
    version: int | None


def run() -> int:
    import sys

    from dlc.lsp_io import serve
    ls = server()
    try:
        return asyncio.run(serve(ls, sys.stdin.buffer, sys.stdout.buffer))
    finally:
        ls.shutdown()
