"""`python -m ophora.cli` is the `ophora` command."""

from ophora.cli import main

main()
