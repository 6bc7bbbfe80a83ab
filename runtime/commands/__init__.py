"""The ``frontdesk`` subcommands, one module each (listed in :data:`runtime.cli.COMMANDS`)."""
