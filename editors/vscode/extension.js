// The dlc extension for VS Code: starts `dlc lsp` (the setting dlc.command) for .dl files and speaks
// the Language Server Protocol to it over stdio. Plain JavaScript on VS Code's own API and Node's
// child_process, no dependencies: the folder is the extension, nothing to build or install.
// Diagnostics (with related information), hover, completion, go to definition, references, the
// outline, quick fixes, formatting and inlay hints (the shape after each line).
"use strict";
const vscode = require("vscode");
const { spawn } = require("child_process");

class Connection {
  // JSON-RPC 2.0 over a child process's stdio with Content-Length framing.
  constructor(child, onNotification, onRequest) {
    this.child = child;
    this.nextId = 1;
    this.pending = new Map();
    this.buffer = Buffer.alloc(0);
    this.onNotification = onNotification;
    this.onRequest = onRequest;
    child.stdout.on("data", (chunk) => this.receive(chunk));
  }
  send(message) {
    const body = Buffer.from(JSON.stringify(Object.assign({ jsonrpc: "2.0" }, message)), "utf8");
    this.child.stdin.write(`Content-Length: ${body.length}\r\n\r\n`);
    this.child.stdin.write(body);
  }
  request(method, params) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.send({ id, method, params });
    });
  }
  notify(method, params) {
    this.send({ method, params });
  }
  receive(chunk) {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const end = this.buffer.indexOf("\r\n\r\n");
      if (end < 0) return;
      const match = /Content-Length: *(\d+)/i.exec(this.buffer.slice(0, end).toString("ascii"));
      const length = match ? parseInt(match[1], 10) : 0;
      if (this.buffer.length < end + 4 + length) return;
      const message = JSON.parse(this.buffer.slice(end + 4, end + 4 + length).toString("utf8"));
      this.buffer = this.buffer.slice(end + 4 + length);
      this.dispatch(message);
    }
  }
  dispatch(message) {
    if (message.id !== undefined && message.method === undefined) {
      const waiting = this.pending.get(message.id);
      this.pending.delete(message.id);
      if (!waiting) return;
      if (message.error) waiting.reject(new Error(message.error.message));
      else waiting.resolve(message.result);
    } else if (message.id !== undefined) {
      this.send({ id: message.id, result: this.onRequest(message.method, message.params) });
    } else {
      this.onNotification(message.method, message.params);
    }
  }
}

// ---- LSP <-> VS Code ------------------------------------------------------------------------------
const position = (p) => new vscode.Position(p.line, p.character);
const range = (r) => new vscode.Range(position(r.start), position(r.end));
const lspPosition = (p) => ({ line: p.line, character: p.character });
const lspRange = (r) => ({ start: lspPosition(r.start), end: lspPosition(r.end) });
const severities = { 1: "Error", 2: "Warning", 3: "Information", 4: "Hint" };

function diagnostic(d) {
  const out = new vscode.Diagnostic(range(d.range), d.message, vscode.DiagnosticSeverity[severities[d.severity || 1]]);
  out.source = d.source;
  if (d.code) out.code = d.code;
  out.relatedInformation = (d.relatedInformation || []).map((r) => new vscode.DiagnosticRelatedInformation(
    new vscode.Location(vscode.Uri.parse(r.location.uri), range(r.location.range)), r.message));
  return out;
}

function edits(list) {
  return (list || []).map((e) => new vscode.TextEdit(range(e.range), e.newText));
}

function symbol(s) {
  const out = new vscode.DocumentSymbol(s.name, s.detail || "", (s.kind || 1) - 1, range(s.range), range(s.selectionRange));
  out.children = (s.children || []).map(symbol);
  return out;
}

function activate(context) {
  const command = vscode.workspace.getConfiguration("dlc").get("command") || ["dlc", "lsp"];
  const output = vscode.window.createOutputChannel("dlc");
  const child = spawn(command[0], command.slice(1), { stdio: ["pipe", "pipe", "pipe"] });
  child.stderr.on("data", (chunk) => output.append(chunk.toString()));
  child.on("error", (err) => vscode.window.showErrorMessage(
    `dlc: cannot start '${command.join(" ")}' (${err.message}); set dlc.command, e.g. to your venv's dlc`));
  const diagnostics = vscode.languages.createDiagnosticCollection("dlc");
  const connection = new Connection(child, (method, params) => {
    if (method === "textDocument/publishDiagnostics") {
      diagnostics.set(vscode.Uri.parse(params.uri), params.diagnostics.map(diagnostic));
    } else if (method === "window/logMessage" || method === "window/showMessage") {
      output.appendLine(params.message);
    }
  }, () => null);
  const ready = connection.request("initialize", {
    processId: process.pid,
    rootUri: null,
    capabilities: {
      textDocument: {
        synchronization: { didSave: false },
        publishDiagnostics: { relatedInformation: true },
        hover: { contentFormat: ["markdown", "plaintext"] },
        completion: { completionItem: {} },
        codeAction: { codeActionLiteralSupport: { codeActionKind: { valueSet: ["quickfix"] } } },
        documentSymbol: { hierarchicalDocumentSymbolSupport: true },
        inlayHint: {},
      },
    },
  }).then(() => connection.notify("initialized", {}));

  const selector = { language: "dl" };
  const docId = (document) => ({ uri: document.uri.toString() });
  const ask = (method, document, extra) => ready.then(() => connection.request(method,
    Object.assign({ textDocument: docId(document) }, extra)));
  const isSpec = (document) => document.languageId === "dl";
  const open = (document) => isSpec(document) && ready.then(() => connection.notify("textDocument/didOpen", {
    textDocument: { uri: document.uri.toString(), languageId: "dl", version: document.version, text: document.getText() },
  }));
  vscode.workspace.textDocuments.forEach(open);
  context.subscriptions.push(
    output, diagnostics,
    vscode.workspace.onDidOpenTextDocument(open),
    vscode.workspace.onDidChangeTextDocument((e) => isSpec(e.document) && ready.then(() => connection.notify(
      "textDocument/didChange", { textDocument: { uri: e.document.uri.toString(), version: e.document.version },
        contentChanges: [{ text: e.document.getText() }] }))),
    vscode.workspace.onDidCloseTextDocument((document) => isSpec(document) && ready.then(() => {
      connection.notify("textDocument/didClose", { textDocument: docId(document) });
      diagnostics.delete(document.uri);
    })),
    vscode.languages.registerHoverProvider(selector, {
      provideHover: (document, pos) => ask("textDocument/hover", document, { position: lspPosition(pos) })
        .then((h) => h && new vscode.Hover(new vscode.MarkdownString(h.contents.value), h.range && range(h.range))),
    }),
    vscode.languages.registerCompletionItemProvider(selector, {
      provideCompletionItems: (document, pos) => ask("textDocument/completion", document, { position: lspPosition(pos) })
        .then((list) => ((list && list.items) || list || []).map((i) => new vscode.CompletionItem(i.label))),
    }, " "),
    vscode.languages.registerDefinitionProvider(selector, {
      provideDefinition: (document, pos) => ask("textDocument/definition", document, { position: lspPosition(pos) })
        .then((l) => l && new vscode.Location(vscode.Uri.parse(l.uri), range(l.range))),
    }),
    vscode.languages.registerReferenceProvider(selector, {
      provideReferences: (document, pos, ctx) => ask("textDocument/references", document, {
        position: lspPosition(pos), context: { includeDeclaration: ctx.includeDeclaration } })
        .then((ls) => (ls || []).map((l) => new vscode.Location(vscode.Uri.parse(l.uri), range(l.range)))),
    }),
    vscode.languages.registerDocumentSymbolProvider(selector, {
      provideDocumentSymbols: (document) => ask("textDocument/documentSymbol", document, {})
        .then((list) => (list || []).map(symbol)),
    }),
    vscode.languages.registerCodeActionsProvider(selector, {
      provideCodeActions: (document, r, ctx) => ask("textDocument/codeAction", document, {
        range: lspRange(r),
        context: { diagnostics: ctx.diagnostics.map((d) => ({ range: lspRange(d.range), message: d.message })) },
      }).then((actions) => (actions || []).map((a) => {
        const action = new vscode.CodeAction(a.title, vscode.CodeActionKind.QuickFix);
        action.isPreferred = a.isPreferred;
        action.edit = new vscode.WorkspaceEdit();
        for (const [uri, list] of Object.entries((a.edit && a.edit.changes) || {})) {
          action.edit.set(vscode.Uri.parse(uri), edits(list));
        }
        return action;
      })),
    }, { providedCodeActionKinds: [vscode.CodeActionKind.QuickFix] }),
    vscode.languages.registerDocumentFormattingEditProvider(selector, {
      provideDocumentFormattingEdits: (document, options) => ask("textDocument/formatting", document, {
        options: { tabSize: options.tabSize, insertSpaces: options.insertSpaces } }).then(edits),
    }),
    vscode.languages.registerInlayHintsProvider(selector, {
      provideInlayHints: (document, r) => ask("textDocument/inlayHint", document, { range: lspRange(r) })
        .then((hints) => (hints || []).map((h) => {
          const hint = new vscode.InlayHint(position(h.position), h.label, vscode.InlayHintKind.Type);
          hint.paddingLeft = true;
          return hint;
        })),
    }),
    { dispose: () => {
      connection.request("shutdown", null).then(() => connection.notify("exit")).catch(() => null);
      setTimeout(() => child.kill(), 1000);
    } },
  );
}

function deactivate() {}

module.exports = { activate, deactivate, Connection };
