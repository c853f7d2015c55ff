// Tokenize .dl files with VS Code's own TextMate engine (vscode-textmate + vscode-oniguruma) and the
// grammar dlc writes; print [file, [[line, [[text, scopes...], ...]], ...]] as JSON (tests/editor/test_textmate.py).
const fs = require("fs");
const path = require("path");
const vsctm = require("vscode-textmate");
const oniguruma = require("vscode-oniguruma");

const [grammarPath, ...files] = process.argv.slice(2);
const wasm = fs.readFileSync(path.join(__dirname, "node_modules/vscode-oniguruma/release/onig.wasm")).buffer;

async function main() {
  await oniguruma.loadWASM(wasm);
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (s) => new oniguruma.OnigString(s),
    }),
    loadGrammar: async () => vsctm.parseRawGrammar(fs.readFileSync(grammarPath, "utf8"), grammarPath),
  });
  const grammar = await registry.loadGrammar("source.dl");
  const out = [];
  for (const file of files) {
    let state = vsctm.INITIAL;
    const lines = fs.readFileSync(file, "utf8").split("\n");
    const tokens = lines.map((line) => {
      const r = grammar.tokenizeLine(line, state);
      state = r.ruleStack;
      return r.tokens.map((t) => [line.slice(t.startIndex, t.endIndex), ...t.scopes.slice(1)]);
    });
    out.push([file, tokens]);
  }
  process.stdout.write(JSON.stringify(out));
}
main().catch((e) => { console.error(e); process.exit(1); });
