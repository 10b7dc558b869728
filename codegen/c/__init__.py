"""The C99 code generator: lowering registry (``lower``), emitter (``emit``), jinja templates."""
