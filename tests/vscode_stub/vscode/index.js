// The parts of VS Code's API that editors/vscode/extension.js uses, recording what it registers, so
// tests/editor/test_vscode_extension.py can drive the extension against a real `dlc lsp` with Node alone.
"use strict";
class Position { constructor(line, character) { this.line = line; this.character = character; } }
class Range { constructor(start, end) { this.start = start; this.end = end; } }
class Location { constructor(uri, range) { this.uri = uri; this.range = range; } }
class Diagnostic { constructor(range, message, severity) { Object.assign(this, { range, message, severity }); } }
class DiagnosticRelatedInformation { constructor(location, message) { Object.assign(this, { location, message }); } }
class TextEdit { constructor(range, newText) { Object.assign(this, { range, newText }); } }
class Hover { constructor(contents, range) { Object.assign(this, { contents, range }); } }
class MarkdownString { constructor(value) { this.value = value; } }
class CompletionItem { constructor(label) { this.label = label; } }
class DocumentSymbol { constructor(name, detail, kind, range, selectionRange) { Object.assign(this, { name, detail, kind, range, selectionRange }); } }
class CodeAction { constructor(title, kind) { Object.assign(this, { title, kind }); } }
class WorkspaceEdit { constructor() { this.changes = {}; } set(uri, edits) { this.changes[uri.toString()] = edits; } }
class InlayHint { constructor(position, label, kind) { Object.assign(this, { position, label, kind }); } }
const Uri = { parse: (s) => ({ toString: () => s }) };
const providers = {};
const diagnostics = {};
const listeners = {};
const register = (name) => (selector, provider) => { providers[name] = provider; return { dispose() {} }; };
module.exports = {
  Position, Range, Location, Diagnostic, DiagnosticRelatedInformation, TextEdit, Hover, MarkdownString,
  CompletionItem, DocumentSymbol, CodeAction, WorkspaceEdit, InlayHint, Uri,
  DiagnosticSeverity: { Error: 0, Warning: 1, Information: 2, Hint: 3 },
  CodeActionKind: { QuickFix: "quickfix" }, InlayHintKind: { Type: 1 },
  providers, diagnostics, listeners,
  workspace: {
    textDocuments: [],
    getConfiguration: () => ({ get: () => JSON.parse(process.env.DLC_COMMAND) }),
    onDidOpenTextDocument: (f) => { listeners.open = f; return { dispose() {} }; },
    onDidChangeTextDocument: (f) => { listeners.change = f; return { dispose() {} }; },
    onDidCloseTextDocument: (f) => { listeners.close = f; return { dispose() {} }; },
  },
  window: {
    createOutputChannel: () => ({ append() {}, appendLine() {}, dispose() {} }),
    showErrorMessage: (m) => { console.log(JSON.stringify({ error: m })); },
  },
  languages: {
    createDiagnosticCollection: () => ({
      set: (uri, list) => { diagnostics[uri.toString()] = list; }, delete() {}, dispose() {},
    }),
    registerHoverProvider: register("hover"), registerCompletionItemProvider: register("completion"),
    registerDefinitionProvider: register("definition"), registerReferenceProvider: register("references"),
    registerDocumentSymbolProvider: register("symbols"), registerCodeActionsProvider: register("codeActions"),
    registerDocumentFormattingEditProvider: register("formatting"), registerInlayHintsProvider: register("inlayHints"),
  },
};
