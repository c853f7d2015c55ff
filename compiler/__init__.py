"""The dlc compiler: AST -> typed IR, shape inference, lint, lowering passes."""
