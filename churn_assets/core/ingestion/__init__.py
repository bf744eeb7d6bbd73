"""Landed files to bronze: the landing folder, the file ledger, typed sources and their bronze rows."""
