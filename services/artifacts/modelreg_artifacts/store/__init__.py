"""The artifact service's own MongoDB collections: upload sessions and the blob index.

They live beside the metadata service's collections but are never read by it (nor theirs by
us): the services talk only through gRPC. Every invariant is kept in one document or guarded by
compare-and-set, within the subset of MongoDB that FerretDB v1 supports.
"""
