"""Examples of sweeping your own model with sweepjax (see ``examples/README.md``)."""
