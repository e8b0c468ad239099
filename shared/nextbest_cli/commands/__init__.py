"""The ``nextbest`` subcommands, one module per command group.

Each module has ``register(commands)``, which adds its parser (and sets ``run``, the function that carries the
command out) to the top-level subparsers; ``nextbest_cli.main`` registers them in the order ``--help`` lists
them. A module imports what its command needs only when it runs, so ``nextbest --help`` stays instant.
"""
