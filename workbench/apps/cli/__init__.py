"""The ``workbench`` command: ``main`` (the parser, one-line errors; the console script's entry point),
``arguments`` (argument types), ``subcommands`` (each subcommand's arguments), ``commands`` (what each
one does)."""
