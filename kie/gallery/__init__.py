"""`kie gallery`: a local web gallery over the ledger, to look at results, compare, decide and re-run.

It reads the ledger and the files on disk (live while batches run), and spends only through the same
runner, ledger and budget guard as the CLI. See `kie.gallery.security` for why it is safe to run on a
machine with a browser.
"""
