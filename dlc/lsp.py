"""`dlc lsp`: a Language Server Protocol server over stdio (pygls >= 2; pip install "dlc[lsp]").

Diagnostics on open and on every change (debounced; a block-use note as related information), the
shape and parameters after each model line (inlay hints), hover on a layer / activation / init /
optimizer / loss / schedule name, completion by context, go to a block's definition and find its uses,
the outline (document symbols), quick fixes (dlc/quick_fixes.py) and formatting (dlc/formatting.py).
What it says comes from dlc/editor.py, which asks the compiler; docs/editors.md sets it up in VS Code,
Neovim, Helix, Emacs.
"""

from __future__ import annotations

import asyncio

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
    analyses: dict[str, editor.Analysis] = {}
    pending: dict[str, asyncio.TimerHandle] = {}
    severity = {"error": t.DiagnosticSeverity.Error, "warning": t.DiagnosticSeverity.Warning,
                "note": t.DiagnosticSeverity.Information}

    def rng(start, end) -> t.Range:
        return t.Range(start=t.Position(*start), end=t.Position(*end))

    def lsp_diagnostic(uri: str, d: editor.Found) -> t.Diagnostic:
        return t.Diagnostic(range=rng(d.start, d.end), message=d.message,
                            severity=severity.get(d.severity, t.DiagnosticSeverity.Error), code=d.code, source="dlc",
                            related_information=[t.DiagnosticRelatedInformation(
                                location=t.Location(uri=uri, range=rng(n.start, n.end)), message=n.message)
                                for n in d.related] or None)

    def publish(uri: str) -> None:
        doc = ls.workspace.get_text_document(uri)
        a = analyses[uri] = editor.analyse(doc.source, editor.document_path(uri))
        ls.text_document_publish_diagnostics(t.PublishDiagnosticsParams(
            uri=uri, version=doc.version, diagnostics=[lsp_diagnostic(uri, d) for d in a.diagnostics]))

    @ls.feature(t.TEXT_DOCUMENT_DID_OPEN)
    def did_open(params: t.DidOpenTextDocumentParams):
        publish(params.text_document.uri)

    @ls.feature(t.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(params: t.DidChangeTextDocumentParams):
        uri = params.text_document.uri
        if uri in pending:
            pending.pop(uri).cancel()
        pending[uri] = asyncio.get_running_loop().call_later(DEBOUNCE, lambda: (pending.pop(uri, None), publish(uri)))

    @ls.feature(t.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(params: t.DidCloseTextDocumentParams):
        analyses.pop(params.text_document.uri, None)

    def analysis(uri: str) -> editor.Analysis:
        if uri not in analyses:
            publish(uri)
        return analyses[uri]

    @ls.feature(t.TEXT_DOCUMENT_INLAY_HINT)
    def inlay_hints(params: t.InlayHintParams):
        first, last = params.range.start.line, params.range.end.line
        return [t.InlayHint(position=t.Position(h.line, h.character), label=" " + h.text,
                            kind=t.InlayHintKind.Type, padding_left=True)
                for h in analysis(params.text_document.uri).hints if first <= h.line <= last]

    @ls.feature(t.TEXT_DOCUMENT_HOVER)
    def hover(params: t.HoverParams):
        doc = ls.workspace.get_text_document(params.text_document.uri)
        word = editor.word_at(doc.source, params.position.line, params.position.character)
        text = editor.hover(word) if word else None
        if text is None:
            return None
        return t.Hover(contents=t.MarkupContent(kind=t.MarkupKind.Markdown, value=text))

    @ls.feature(t.TEXT_DOCUMENT_COMPLETION, t.CompletionOptions(trigger_characters=[" "]))
    def completion(params: t.CompletionParams):
        doc = ls.workspace.get_text_document(params.text_document.uri)
        words = editor.completions(doc.source, params.position.line, params.position.character,
                                   analysis(params.text_document.uri).blocks)
        return t.CompletionList(is_incomplete=False, items=[t.CompletionItem(label=w) for w in words])

    def _places(params):
        doc = ls.workspace.get_text_document(params.text_document.uri)
        word = editor.word_at(doc.source, params.position.line, params.position.character)
        return (editor.block_places(doc.source, word) if word else (None, [])), params.text_document.uri

    def _location(uri, place):
        line, start, end = place
        return t.Location(uri=uri, range=t.Range(start=t.Position(line, start), end=t.Position(line, end)))

    @ls.feature(t.TEXT_DOCUMENT_DEFINITION)
    def definition(params: t.DefinitionParams):
        (found, _), uri = _places(params)
        return _location(uri, found) if found else None

    @ls.feature(t.TEXT_DOCUMENT_REFERENCES)
    def references(params: t.ReferenceParams):
        (found, uses), uri = _places(params)
        if found is None:
            return []
        return ([_location(uri, found)] if params.context.include_declaration else []) + \
            [_location(uri, u) for u in uses]

    @ls.feature(t.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def symbols(params: t.DocumentSymbolParams):
        doc = ls.workspace.get_text_document(params.text_document.uri)
        rows = doc.source.splitlines()
        kinds = {"model": t.SymbolKind.Class, "block": t.SymbolKind.Function, "residual": t.SymbolKind.Namespace,
                 "parallel": t.SymbolKind.Namespace, "branch": t.SymbolKind.Namespace,
                 "repeat": t.SymbolKind.Namespace}

        def convert(s: editor.Symbol) -> t.DocumentSymbol:
            whole = rng((s.line, 0), (s.last_line, len(rows[s.last_line]) if s.last_line < len(rows) else 0))
            return t.DocumentSymbol(name=s.name, detail=s.detail, kind=kinds.get(s.detail, t.SymbolKind.Property),
                                    range=whole, selection_range=rng((s.line, s.start), (s.line, s.end)),
                                    children=[convert(c) for c in s.children] or None)
        return [convert(s) for s in editor.symbols(doc.source)]

    @ls.feature(t.TEXT_DOCUMENT_CODE_ACTION,
                t.CodeActionOptions(code_action_kinds=[t.CodeActionKind.QuickFix]))
    def code_actions(params: t.CodeActionParams):
        from dlc.quick_fixes import fixes
        uri = params.text_document.uri
        doc = ls.workspace.get_text_document(uri)
        first, last = params.range.start.line, params.range.end.line
        out = []
        for d in analysis(uri).diagnostics:
            if d.diagnostic is None or not (first <= d.start[0] <= last or d.start[0] <= first <= d.end[0]):
                continue
            for fix in fixes(doc.source, d.diagnostic):
                out.append(t.CodeAction(
                    title=fix.title, kind=t.CodeActionKind.QuickFix, diagnostics=[lsp_diagnostic(uri, d)],
                    is_preferred=fix.preferred, edit=t.WorkspaceEdit(changes={uri: [
                        t.TextEdit(range=rng(start, end), new_text=new) for start, end, new in fix.edits]})))
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
        return [t.TextEdit(range=rng((0, 0), (len(rows) - 1, len(rows[-1]))), new_text=formatted)]

    return ls


def run() -> int:
    server().start_io()
    return 0
