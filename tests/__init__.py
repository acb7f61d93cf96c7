"""Test suite of harmony_dimse; a package so test modules can import tests.peers, tests.corpus."""
