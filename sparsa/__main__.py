from sparsa.cli import entry

entry()
