// Activate editors/vscode/extension.js on the stub API (NODE_PATH=tests/vscode_stub), open one spec, and print what VS Code would show.
"use strict";
const path = require("path");
const vscode = require("vscode");
const extension = require(path.resolve(__dirname, "../../editors/vscode/extension.js"));
const [file] = process.argv.slice(2);
const text = require("fs").readFileSync(file, "utf8");
const uri = "file://" + file;
const document = { uri: vscode.Uri.parse(uri), languageId: "dl", version: 1, getText: () => text };
const context = { subscriptions: [] };
extension.activate(context);
vscode.listeners.open(document);
const P = (l, c) => new vscode.Position(l, c);
const waitForDiagnostics = () => new Promise((resolve) => {
  const poll = () => (vscode.diagnostics[uri] ? resolve(vscode.diagnostics[uri]) : setTimeout(poll, 20));
  poll();
});
(async () => {
  const diags = await waitForDiagnostics();
  const hover = await vscode.providers.hover.provideHover(document, P(2, 6));
  const hints = await vscode.providers.inlayHints.provideInlayHints(document, new vscode.Range(P(0, 0), P(50, 0)));
  const actions = await vscode.providers.codeActions.provideCodeActions(document, new vscode.Range(P(2, 0), P(2, 0)),
    { diagnostics: diags });
  const symbols = await vscode.providers.symbols.provideDocumentSymbols(document);
  const formatting = await vscode.providers.formatting.provideDocumentFormattingEdits(document, { tabSize: 4, insertSpaces: true });
  console.log(JSON.stringify({
    diagnostics: diags.map((d) => [d.range.start.line, d.range.start.character, d.severity, d.code || null, d.message]),
    hover: hover && hover.contents.value.split("\n")[0],
    hints: hints.map((h) => [h.position.line, h.label.trim()]),
    actions: actions.map((a) => [a.title, a.isPreferred, Object.values(a.edit.changes)[0].map((e) => e.newText)]),
    symbols: symbols.map((s) => s.name),
    formatted: formatting.map((e) => e.newText),
  }));
  context.subscriptions.forEach((s) => s.dispose());
  setTimeout(() => process.exit(0), 1200);
})();
