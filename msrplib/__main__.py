"""``python -m msrplib``: the ``msrp`` command line."""

from msrplib.cli import main

main()
