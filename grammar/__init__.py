"""The .dl language: the Lark grammar and the parser that turns text into an AST."""

from .parser import parse, GRAMMAR_PATH

__all__ = ["parse", "GRAMMAR_PATH"]
